"""A run configuration file (``rrgbench run --config run.yaml``) and the resolved configuration printed with sources.

The file is one entry of a suite's ``models`` list (:mod:`rrgbench.run.suite`), plus the size profile::

    model: mcsam
    datasets: [synthetic]          # or dataset: synthetic (one: a run trains on one dataset)
    seeds: [0, 1, 2]               # or seed: 0
    profile: small                 # optional; default: the dataset's
    overrides:                     # strict, like --set: a typo is an error
      memory.size: 1024
      train.epochs: 12
      efficiency.mode: fast

Its overrides are the ``file`` layer of :func:`rrgbench.config.resolve_config`; command-line flags win over
every key of the file (``--model``, ``--dataset``, ``--seed``, ``--profile``, and ``--set`` over
``overrides``). The same settings given as flags resolve to the same configuration fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.config import RunConfig
from rrgbench.errors import ConfigError

RUN_FILE_KEYS = ("model", "overrides", "seeds", "datasets", "seed", "dataset", "profile")


@dataclass(frozen=True)
class RunFile:
    """What a run configuration file chooses (None: not given, the flag or the default decides)."""

    model: str | None = None
    dataset: str | None = None
    seeds: tuple[int, ...] | None = None
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def load_run_file(path: Path) -> RunFile:
    """Read and check a run configuration file; errors name the file and the key."""
    from rrgbench.run.suite import MODEL_KEYS, _known_keys, _model_entry, read_yaml

    path = Path(path)
    data = read_yaml(path, f"--config: file not found: {path}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run file is a mapping with keys {', '.join(RUN_FILE_KEYS)}")
    _known_keys(data, RUN_FILE_KEYS, str(path))
    for single, several in (("seed", "seeds"), ("dataset", "datasets")):
        if single in data and several in data:
            raise ConfigError(f"{path}: give '{single}' or '{several}', not both")
    entry_data = {key: data[key] for key in MODEL_KEYS if key in data}
    if "seed" in data:
        entry_data["seeds"] = data["seed"]
    if "dataset" in data:
        entry_data["datasets"] = data["dataset"]
    entry = _model_entry({"model": "", **entry_data}, str(path))
    if entry.datasets is not None and len(entry.datasets) != 1:
        raise ConfigError(f"{path}: a run trains on one dataset, got {list(entry.datasets)}; list several in a "
                          "suite (rrgbench suite)")
    profile = data.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise ConfigError(f"{path}: profile: expected a profile name, got {profile!r}")
    return RunFile(model=str(data["model"]) if data.get("model") else None,
                   dataset=entry.datasets[0] if entry.datasets else None, seeds=entry.seeds, profile=profile,
                   overrides=dict(entry.overrides))


def resolved_lines(config: RunConfig) -> list[str]:
    """The fully resolved configuration, one ``section.key = value  [source]`` line per option."""
    from rrgbench.extension.options import as_dict

    components = ", ".join(f"{kind}={name}" for kind, name in config.components.items())
    lines = [f"# {config.model} on {config.dataset}, profile {config.profile}, seed {config.seed} "
             f"(config fingerprint {config.fingerprint()})", f"# components: {components}",
             "# source: default < recipe < dataset < profile < suite < file < flag"]
    for section, options in config.sections.items():
        for key, value in as_dict(options).items():
            dotted = f"{section}.{key}"
            lines.append(f"{dotted} = {json.dumps(value)}  [{config.sources.get(dotted, 'default')}]")
    return lines
