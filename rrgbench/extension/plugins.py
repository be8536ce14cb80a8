"""The plugin manager and the registries it fills.

Owns: loading plugins (built-ins, the ``rrgbench`` entry-point group, ``-p``/``RRGBENCH_PLUGINS``),
calling the registration hooks, the per-kind registries with duplicate detection,
"did you mean" lookups and wildcard listing, and where each plugin's code lives (:func:`plugin_module`,
:func:`plugin_paths`). Nothing here imports torch.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from rrgbench.errors import ConfigError, RRGBenchError, UnknownNameError, did_you_mean
from rrgbench.extension import hookspecs
from rrgbench.extension.options import NoOptions

PROJECT = "rrgbench"
ENTRY_POINT_GROUP = "rrgbench"
KINDS = ("encoder", "memory", "alignment", "decoder", "model", "dataset", "metric", "labeler")
_HOOK_OF_KIND = {
    "encoder": "rrgbench_register_encoders",
    "memory": "rrgbench_register_memories",
    "alignment": "rrgbench_register_alignments",
    "decoder": "rrgbench_register_decoders",
    "model": "rrgbench_register_models",
    "dataset": "rrgbench_register_datasets",
    "metric": "rrgbench_register_metrics",
    "labeler": "rrgbench_register_labelers",
}


@dataclass(frozen=True)
class Entry:
    """One registered thing: its name, a factory (callable or ``"module:attr"``), options and metadata."""

    kind: str
    name: str
    factory: Callable[..., Any] | str | None
    options: type = NoOptions
    description: str = ""
    plugin: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """Resolve the factory, importing its module on first use."""
        if callable(self.factory):
            return self.factory
        if not isinstance(self.factory, str) or ":" not in self.factory:
            raise RRGBenchError(f"{self.kind} '{self.name}' has no factory (plugin {self.plugin})")
        module_name, _, attr = self.factory.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)


class Registry:
    """All registered entries, by kind, with helpful lookup errors, and the plugin objects they came from."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.plugins: dict[str, object] = {}  # plugin name -> the module or object implementing its hooks
        self.distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)

    def add(self, entry: Entry) -> None:
        existing = self._entries[entry.kind].get(entry.name)
        if existing is not None:
            raise RRGBenchError(
                f"{entry.kind} '{entry.name}' is registered twice: by plugin '{existing.plugin}' and by "
                f"plugin '{entry.plugin}'; rename one or disable one of the plugins"
            )
        self._entries[entry.kind][entry.name] = entry

    def get(self, kind: str, name: str) -> Entry:
        entries = self._entries[kind]
        if name not in entries:
            known = ", ".join(sorted(entries)) or "none registered"
            raise UnknownNameError(f"unknown {kind} '{name}'{did_you_mean(name, entries)}; known: {known}")
        return entries[name]

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries[kind] if fnmatch.fnmatch(n, pattern))

    def entries(self, kind: str, pattern: str = "*") -> list[Entry]:
        return [self._entries[kind][n] for n in self.names(kind, pattern)]


def _registrar(registry: Registry, kind: str, plugin: str) -> Callable[..., None]:
    """The ``register`` callback handed to one plugin's hook for one kind (keywords as in the hookspecs)."""
    allowed = hookspecs.REGISTER_KEYWORDS[kind]

    def register(name: str, factory: Any = None, *, options: type = NoOptions, description: str = "",
                 **extra: Any) -> None:
        if not isinstance(name, str) or not name:
            raise RRGBenchError(f"plugin '{plugin}' registered a {kind} without a name")
        unknown = [key for key in extra if key not in allowed]
        if unknown:
            raise RRGBenchError(f"plugin '{plugin}' registered {kind} '{name}' with unknown keyword(s) "
                                f"{', '.join(unknown)}{did_you_mean(unknown[0], allowed)}; "
                                f"allowed: {', '.join(allowed)}")
        registry.add(Entry(kind, name, factory, options, description.strip(), plugin, extra))

    return register


class PluginHost:
    """A pluggy manager plus the registry built from its hooks (rebuilt when plugins change)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._registry: Registry | None = None
        self.load_errors: list[str] = []

    def register_plugin(self, plugin: object, name: str | None = None) -> None:
        """Add a plugin object or module (tests use this for in-test plugins)."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self._registry = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._collect()
        return self._registry

    def _collect(self) -> Registry:
        registry = Registry()
        registry.plugins = dict(self.pm.list_name_plugin())
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        registry.distributions = {name: (dists[id(plugin)].project_name, dists[id(plugin)].version)
                                  for name, plugin in registry.plugins.items() if id(plugin) in dists}
        for kind in KINDS:
            hook = getattr(self.pm.hook, _HOOK_OF_KIND[kind])
            for impl in hook.get_hookimpls():
                impl.function(register=_registrar(registry, kind, impl.plugin_name))
        return registry

    def plugin_info(self) -> list[dict[str, Any]]:
        """Name, version and implemented hooks of every loaded plugin."""
        dists = {name: dist for name, dist in self.pm.list_plugin_distinfo()}
        info = []
        for name, plugin in sorted(self.pm.list_name_plugin(), key=lambda item: item[0]):
            hooks = sorted(impl.name for impl in self.pm.get_hookcallers(plugin) or ())
            dist = dists.get(plugin)
            version = dist.version if dist is not None else _module_version(plugin)
            info.append({"name": name, "version": version, "hooks": hooks,
                         "package": dist.project_name if dist is not None else None})
        return info


def _module_version(plugin: object) -> str | None:
    return getattr(plugin, "__version__", None)


def _entry_points() -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=ENTRY_POINT_GROUP)


def autoload_disabled() -> bool:
    return os.environ.get("RRGBENCH_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in ("1", "true", "yes")


def load_entry_points(host: PluginHost) -> None:
    """Load the built-in entry points always, third-party ones unless autoload is disabled."""
    found_builtin = False
    for ep in _entry_points():
        dist_name = (ep.dist.name if ep.dist is not None else "").lower()
        builtin = dist_name == PROJECT
        found_builtin |= builtin
        if not builtin and autoload_disabled():
            continue
        if host.pm.get_plugin(ep.name) is not None:
            continue
        try:
            host.pm.register(ep.load(), name=ep.name)
        except ImportError as exc:
            host.load_errors.append(f"plugin '{ep.name}' ({ep.value}) failed to import: {exc}")
            continue
        if ep.dist is not None:
            host.pm._plugin_distinfo.append((host.pm.get_plugin(ep.name), _DistFacade(ep.dist)))
    if not found_builtin:
        raise RRGBenchError("rrgbench's built-in plugins are not installed; run: pip install -e .")


class _DistFacade:
    """Mimics setuptools' distribution attributes pluggy exposes (project_name, version)."""

    def __init__(self, dist: metadata.Distribution) -> None:
        self._dist = dist

    @property
    def project_name(self) -> str:
        return self._dist.metadata["name"]

    @property
    def version(self) -> str:
        return self._dist.version


def load_modules(host: PluginHost, modules: Iterable[str]) -> None:
    """Load extra plugin modules by import name (``-p`` and ``RRGBENCH_PLUGINS``)."""
    for module_name in modules:
        module_name = module_name.strip()
        if not module_name or host.pm.get_plugin(module_name) is not None:
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import plugin module '{module_name}': {exc}") from None
        except Exception as exc:  # the module's own code failed: name where
            raise ConfigError(f"plugin module '{module_name}' failed while importing: {type(exc).__name__}: {exc}"
                              f"{_where_raised(exc, module_name)}") from None
        host.register_plugin(module, name=module_name)


_HOST: PluginHost | None = None


def get_host(extra_modules: Iterable[str] = ()) -> PluginHost:
    """The process-wide plugin host, created and loaded on first use."""
    global _HOST
    if _HOST is None:
        host = PluginHost()
        load_entry_points(host)
        env_modules = [m for m in os.environ.get("RRGBENCH_PLUGINS", "").split(",") if m.strip()]
        load_modules(host, env_modules)
        host.pm.check_pending()
        _HOST = host
    load_modules(_HOST, extra_modules)
    return _HOST


def registry() -> Registry:
    """The registry of the process-wide plugin host."""
    return get_host().registry


def _where_raised(exc: BaseException, module_name: str) -> str:
    """`` (FILE, line N)`` of the innermost frame in the failing plugin module's code (its file, or its
    package's folder), if found. Matched by path, so a plugin named ``util`` is not any ``.../util...`` file."""
    import importlib.util
    import traceback

    try:
        spec = importlib.util.find_spec(module_name)
    except Exception:  # a parent package that fails too, a module left without a spec
        return ""
    if spec is None:
        return ""
    locations = spec.submodule_search_locations
    roots = [Path(p).resolve() for p in (locations if locations is not None else [spec.origin]) if p]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if any(path == root or root in path.parents for root in roots):
            return f" ({frame.filename}, line {frame.lineno})"
    return ""


def plugin_module(plugin: object) -> ModuleType | None:
    """The module a plugin's code lives in: the plugin itself when it is a module, else its class's module."""
    if isinstance(plugin, ModuleType):
        return plugin
    return sys.modules.get(getattr(plugin, "__module__", "") or type(plugin).__module__)


def plugin_paths() -> dict[str, Path]:
    """Where each loaded plugin's code lives: its top-level package's folder, or its module's file.

    Empty before any plugin is loaded. Used to say which plugin raised an error (:mod:`rrgbench.cli.failure`).
    """
    if _HOST is None:
        return {}
    paths = {}
    for name, plugin in _HOST.pm.list_name_plugin():
        module = plugin_module(plugin)
        top = sys.modules.get(module.__name__.partition(".")[0]) if module is not None else None
        if top is not None and top.__name__ != PROJECT and getattr(top, "__path__", None):
            paths[name] = Path(next(iter(top.__path__))).resolve()
        elif module is not None and getattr(module, "__file__", None):
            paths[name] = Path(module.__file__).resolve()
    return paths


def reset() -> None:
    """Forget the process-wide host (tests; a new one loads on next use)."""
    global _HOST
    _HOST = None
