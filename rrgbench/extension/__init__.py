"""The extension API: what a plugin implements (hooks), declares (options) and honours (component contracts).

``hookspecs`` documents every registration hook, ``options`` the typed option schemas, ``components`` the
torch contracts of encoders, memories, alignments and decoders, ``plugins`` the manager that loads plugins
and the registries it fills. Importing this package imports nothing heavy.
"""

from __future__ import annotations

from rrgbench.extension.hookspecs import hookimpl
from rrgbench.extension.options import NoOptions, option

__all__ = ["NoOptions", "hookimpl", "option"]
