"""What identifies the code and machine behind a run: package versions, device, git revision, plugin source hashes.

:func:`plugin_code` names every plugin that contributed a component, the recipe or the dataset of a run,
with its distribution, version and a SHA-256 over its package's Python source files (names and bytes;
data files and documentation are left out, so editing a README changes nothing). A suite reuses a
finished run only when its configuration *and* this code identity match (:mod:`rrgbench.run.suite`).
The harness itself is identified by the git revision (not used for reuse: a change to the harness would
otherwise re-run every suite).
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from rrgbench.config import COMPONENT_KINDS, RunConfig
from rrgbench.extension.plugins import Registry, plugin_module
from rrgbench.record import Environment, PluginCode

PACKAGES = ("rrgbench", "torch", "torchvision", "timm", "numpy", "pycocoevalcap", "pluggy", "transformers",
            "f1chexbert", "radgraph")


def environment(device: str, plugins: list[PluginCode] | None = None) -> Environment:
    """Package versions, device, platform, git revision and the contributing plugins, for the record."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return Environment(packages=versions, python=platform.python_version(), platform=platform.platform(),
                       device=device, device_name=_device_name(device), git=git_revision(), plugins=plugins or [])


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(0)
    return platform.processor() or platform.machine()


def git_revision() -> dict[str, Any] | None:
    """The rrgbench source checkout's commit and whether it had uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": rev, "dirty": bool(dirty)}


def contributions(registry: Registry, config: RunConfig) -> dict[str, list[str]]:
    """Plugin name -> what it contributed to this configuration (``kind:name``)."""
    wanted = [("model", config.model), ("dataset", config.dataset),
              *((kind, config.components[kind]) for kind in COMPONENT_KINDS)]
    found: dict[str, list[str]] = {}
    for kind, name in wanted:
        found.setdefault(registry.get(kind, name).plugin, []).append(f"{kind}:{name}")
    return found


def plugin_code(registry: Registry, config: RunConfig) -> list[PluginCode]:
    """The code identity of every plugin that contributed to ``config`` (sorted by plugin name)."""
    out = []
    for name, contributed in sorted(contributions(registry, config).items()):
        plugin = registry.plugins.get(name)
        module = plugin_module(plugin)
        distribution, version = registry.distributions.get(name, (None, getattr(plugin, "__version__", None)))
        out.append(PluginCode(plugin=name, module=module.__name__ if module else type(plugin).__name__,
                              distribution=distribution, version=version,
                              source_sha256=source_hash(module) if module else None, contributed=contributed))
    return out


def source_files(module: ModuleType) -> list[Path]:
    """The Python files of a plugin: its whole package when it is one, else its single module file."""
    file = getattr(module, "__file__", None)
    if not file:
        return []
    path = Path(file)
    if path.name == "__init__.py":
        return sorted(p for p in path.parent.rglob("*.py") if "__pycache__" not in p.parts)
    return [path]


def source_hash(module: ModuleType) -> str | None:
    """SHA-256 over the relative names and bytes of a plugin's Python source files."""
    files = source_files(module)
    if not files:
        return None
    base = files[0].parent if len(files) == 1 else Path(module.__file__).parent  # type: ignore[arg-type]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(base)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def code_identity(plugins: list[PluginCode]) -> dict[str, str | None]:
    """Plugin -> source hash: what must match for a suite to reuse a finished run."""
    return {code.plugin: code.source_sha256 for code in plugins}
