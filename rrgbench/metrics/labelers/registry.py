"""Building a registered labeler by name; a labeler that cannot run raises UnavailableError with the reason."""

from __future__ import annotations

from typing import Any

from rrgbench.extension.options import validate
from rrgbench.extension.plugins import Registry


def build_labeler(registry: Registry | None, name: str, options: dict[str, Any] | None = None) -> Any:
    """Instantiate labeler ``name`` (``registry`` defaults to the process-wide one)."""
    if registry is None:
        from rrgbench.extension.plugins import registry as default_registry

        registry = default_registry()
    entry = registry.get("labeler", name)
    return entry.load()(validate(entry.options, options or {}, f"labeler '{name}'"))
