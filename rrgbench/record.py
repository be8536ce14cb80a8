"""The run record (``results.json``): one typed, versioned record for training runs, evaluations and scores.

Every writer and reader of ``results.json`` goes through this module: a training run, ``rrgbench evaluate``
and ``rrgbench score`` build a :class:`RunRecord` and :func:`write_record` it; leaderboards, ``compare``
and :func:`rrgbench.load_runs` read them with :func:`load_records`. The shape is fixed by the dataclasses
below and published as a JSON Schema (``record.schema.json`` in this package, generated from them by
:func:`json_schema` and rewritten by :func:`write_json_schema`; a test keeps the two equal).

Schema version 2. Version-1 records (written before 2026-11-30; their ``efficiency`` had three shapes)
are read by :func:`upgrade_v1` into the same types, so old runs and committed boards still load.

A record carries its scored studies (``studies``: id, prediction, reference), so paired significance tests
between runs need nothing but records.

``kind`` says what produced a record: ``training`` (``rrgbench run``), ``evaluation`` (``rrgbench
evaluate``: a saved model decoded again) or ``external`` (``rrgbench score``: another system's reports).
A figure a record cannot have (no model ran, a measurement was switched off) is ``None`` with the reason
in the nearest ``unavailable`` field, never 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrgbench.config import user_choices
from rrgbench.errors import DataError

SCHEMA_VERSION = 2
RESULTS_FILE = "results.json"
SCHEMA_FILE = Path(__file__).with_name("record.schema.json")
KINDS = ("training", "evaluation", "external")


# -- metrics ---------------------------------------------------------------------------------------------
@dataclass
class MetricValue:
    """One metric of one run: the value with its 95% bootstrap CI, or why it is unavailable."""

    value: float | None
    higher_is_better: bool = True
    group: str | None = None  # the registered metric group that computed it ("nlg", "clinical", ...)
    ci95: list[float] | None = None
    unavailable: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationPoint:
    """One validation during training (learning curves are drawn from these)."""

    epoch: int
    step: int
    seconds: float | None  # training wall time up to this point (validation and checkpoints excluded)
    value: float  # the selection metric (train.select_metric)
    values: dict[str, float | None] = field(default_factory=dict)  # every curve metric (train.curve_metrics)


@dataclass
class Validation:
    """Checkpoint selection on the validation split (never test)."""

    metric: str
    best_epoch: int
    best_value: float | None
    history: list[ValidationPoint] = field(default_factory=list)


@dataclass
class StudyResult:
    """One test study as scored: the generated report and its (cleaned, untruncated) reference."""

    id: str
    prediction: str
    reference: str


@dataclass
class PredictionStats:
    """How varied a model's test reports are: a model that writes one report for every study is degenerate."""

    studies: int
    distinct: int
    distinct_share: float
    most_frequent_share: float
    most_frequent: str


# -- protocol ----------------------------------------------------------------------------------------------
@dataclass
class Bootstrap:
    resamples: int
    seed: int
    level: float = 0.95
    unit: str = "study"


@dataclass
class Protocol:
    """How the numbers were obtained: data, cleaning, decoding, selection, labeler, resampling."""

    cleaning: str
    references: str
    bootstrap: Bootstrap
    splits: dict[str, int] | None = None
    vocabulary: dict[str, Any] | None = None
    max_len: int | None = None
    decode: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    profile: str | None = None
    initialization: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)  # what the dataset plugin notes (e.g. synthetic seed)
    metric_groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # what each metric group used
    processes: int | None = None
    evaluation: dict[str, Any] | None = None  # kind "evaluation": the checkpoint and its checksum
    external: dict[str, Any] | None = None  # kind "external": files, cleaning, id matching


# -- efficiency ----------------------------------------------------------------------------------------------
@dataclass
class Timing:
    median: float | None
    p90: float | None
    mean: float | None
    n: int


@dataclass
class Parameters:
    total: int
    trainable: int
    components: dict[str, int] = field(default_factory=dict)


@dataclass
class TrainCost:
    steps_timed: int
    warmup_steps_excluded: int
    step_seconds: Timing
    samples_per_second: float | None  # batch size over the median step time


@dataclass
class DecodeCost:
    seconds: float | None
    studies: int
    seconds_per_study: float | None
    studies_per_second: float | None


@dataclass
class Inference:
    latency_batch1: dict[str, Any] | None = None
    throughput: dict[str, Any] | None = None
    unavailable: str | None = None


@dataclass
class Retrieval:
    """The memory's cost: its share of the forward pass and of generation, and time against no memory."""

    memory: str | None = None
    memory_size: int | None = None
    memory_modules: list[str] = field(default_factory=list)
    share_of_forward: float | None = None
    share_of_generate: float | None = None
    vs_no_memory: dict[str, Any] | None = None
    unavailable: str | None = None


@dataclass
class Efficiency:
    """Cost figures; for a record where no model ran, everything is None and ``unavailable`` says why."""

    parameters: Parameters | None = None
    train: TrainCost | None = None
    test_set_decode: DecodeCost | None = None
    inference: Inference | None = None
    peak_memory: dict[str, dict[str, int | None]] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)
    retrieval: Retrieval | None = None
    device: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    measurement_seconds: float | None = None
    unavailable: str | None = None

    @property
    def peak_memory_bytes(self) -> int | None:
        run = self.peak_memory.get("run") or {}
        value = run.get("cuda_max_allocated_bytes", run.get("peak_rss_bytes"))
        return value if isinstance(value, int) else None


# -- environment ---------------------------------------------------------------------------------------------
@dataclass
class PluginCode:
    """A plugin that contributed a component, recipe or dataset to a run, and a hash of its source files."""

    plugin: str
    module: str
    distribution: str | None
    version: str | None
    source_sha256: str | None
    contributed: list[str] = field(default_factory=list)  # e.g. ["memory:clinical-memory", "model:mcsam"]


@dataclass
class Environment:
    packages: dict[str, str | None]
    python: str
    platform: str
    device: str
    device_name: str | None = None
    git: dict[str, Any] | None = None
    plugins: list[PluginCode] = field(default_factory=list)


# -- the record ----------------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """``results.json``: what one run (or evaluation, or scoring) measured, and how."""

    kind: str
    run_id: str
    model: str
    dataset: str
    metrics: dict[str, MetricValue]
    protocol: Protocol
    environment: Environment
    created: str
    efficiency: Efficiency = field(default_factory=Efficiency)
    profile: str | None = None
    seed: int | None = None
    config: dict[str, Any] | None = None  # RunConfig.to_dict() (None for external systems)
    validation: Validation | None = None
    predictions: PredictionStats | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # e.g. ce_per_observation
    studies: list[StudyResult] = field(default_factory=list)  # what was scored (paired tests need it)
    ablation_of: str | None = None  # the recipe this model ablates (declared at its registration)
    evaluated_from: str | None = None
    schema_version: int = SCHEMA_VERSION

    def value(self, key: str) -> float | None:
        """A metric's value (None when absent or unavailable)."""
        metric = self.metrics.get(key)
        return None if metric is None else metric.value

    @property
    def user_overrides(self) -> dict[str, Any]:
        return user_choices((self.config or {}).get("overrides") or {})

    def to_json(self) -> dict[str, Any]:
        return _encode(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "record") -> RunRecord:
        """Read a record of any known schema version; a DataError names ``where`` and the problem."""
        if not isinstance(data, Mapping):
            raise DataError(f"{where}: a run record is a JSON object")
        version = data.get("schema_version")
        if version == 1:
            data = upgrade_v1(data)
        elif version != SCHEMA_VERSION:
            raise DataError(f"{where}: unknown schema_version {version!r} (this rrgbench reads 1 and "
                            f"{SCHEMA_VERSION}); upgrade rrgbench")
        try:
            record = _decode(cls, data, where)
        except (TypeError, ValueError, KeyError) as exc:
            raise DataError(f"not a valid run record: {exc}") from None
        if record.kind not in KINDS:
            raise DataError(f"{where}: kind must be one of {', '.join(KINDS)}, got {record.kind!r}")
        return record


# -- reading and writing ---------------------------------------------------------------------------------------
def read_record(path: Path, transform: Callable[[Any], Any] | None = None) -> RunRecord:
    """One ``results.json`` (its JSON passed through ``transform`` first, when given); a DataError names the
    file when it is unreadable or malformed."""
    from rrgbench.io import read_json

    data = read_json(Path(path), "run record")
    return RunRecord.from_json(transform(data) if transform else data, str(path))


def write_record(path: Path, record: RunRecord, indent: int = 2) -> None:
    """Write a record atomically (refusing non-finite numbers: JSON has none)."""
    from rrgbench.io import write_text

    text = json.dumps(record.to_json(), indent=indent, allow_nan=False)
    write_text(Path(path), text + "\n")


@dataclass
class LoadedRecords:
    """Records found below a folder, and the files that could not be read (with the reason)."""

    records: list[RunRecord]
    paths: list[Path]
    problems: list[str]


def load_records(root: Path | str, *, strict: bool = True,
                 transform: Callable[[Any], Any] | None = None) -> LoadedRecords:
    """Every ``results.json`` at or below ``root``, in path order (each passed through ``transform`` as JSON,
    before it is decoded, when given).

    With ``strict`` an unreadable record is an error naming it; otherwise it is listed in ``problems``
    (so a caller can say what it left out, never drop it silently).
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"no such folder: {root}")
    files = [root] if root.is_file() else sorted(root.rglob(RESULTS_FILE))
    found = LoadedRecords([], [], [])
    for file in files:
        try:
            found.records.append(read_record(file, transform))
            found.paths.append(file)
        except DataError as exc:
            if strict:
                raise
            found.problems.append(str(exc))
    return found


# -- version 1 -------------------------------------------------------------------------------------------------
def upgrade_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 record in the version-2 shape (nothing measured is dropped or invented)."""
    protocol = dict(data.get("protocol") or {})
    external = protocol.get("source") == "external"
    kind = "external" if external else ("evaluation" if data.get("evaluated_from") else "training")
    groups = {name: protocol.pop(name) for name in ("nlg", "clinical", "radgraph") if name in protocol}
    dataset_notes = {name: protocol.pop(name) for name in ("synthetic", "images") if name in protocol}
    known = {f.name for f in dataclasses.fields(Protocol)}
    new_protocol = {key: value for key, value in protocol.items() if key in known}
    new_protocol.setdefault("bootstrap", {"resamples": 1000, "seed": 0})
    new_protocol["metric_groups"] = groups
    new_protocol["dataset"] = {**dataset_notes, **{k: v for k, v in protocol.items()
                                                   if k not in known and k not in ("source",) and k not in (
                                                       "predictions_file", "references_file", "matching")}}
    if external:
        new_protocol["external"] = {key: protocol.get(key) for key in
                                    ("predictions_file", "references_file", "matching")}
    config = data.get("config")
    if external:
        new_protocol["external"]["settings"] = (config or {}).get("external")
        config = None
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "run_id": data.get("run_id") or "run",
        "model": data["model"],
        "dataset": data["dataset"],
        "metrics": {key: _v1_metric(key, entry) for key, entry in (data.get("metrics") or {}).items()},
        "protocol": new_protocol,
        "environment": _v1_environment(data.get("environment") or {}),
        "created": data.get("created") or "",
        "efficiency": _v1_efficiency(data.get("efficiency") or {}, external),
        "profile": data.get("profile"),
        "seed": data.get("seed"),
        "config": _v1_config(config),
        "validation": _v1_validation(data.get("validation")),
        "evaluated_from": data.get("evaluated_from"),
        "ablation_of": _v1_ablation_base(str(data["model"])),
    }


V1_ABLATION_BASES = ("mcsam",)
"""Version-1 records did not name ablation bases; their leaderboards found them from ``<base>-<variant>``
names, and the only family among them was MCSAM's. The reader keeps that for those records alone."""


def _v1_ablation_base(model: str) -> str | None:
    return next((base for base in V1_ABLATION_BASES if model.startswith(base + "-")), None)


_V1_GROUPS = {"bleu": "nlg", "meteor": "nlg", "rouge": "nlg", "cider": "nlg", "ce": "clinical", "radgraph": "radgraph"}


def _v1_metric(key: str, entry: Any) -> dict[str, Any]:
    entry = dict(entry) if isinstance(entry, Mapping) else {"value": None, "unavailable": "malformed entry"}
    prefix = key.split("_", 1)[0]
    entry.setdefault("group", _V1_GROUPS.get(prefix))
    return {k: v for k, v in entry.items() if k in {f.name for f in dataclasses.fields(MetricValue)}}


def _v1_config(config: Any) -> dict[str, Any] | None:
    if not isinstance(config, Mapping):
        return None
    flags = dict(config.get("user_overrides") or {})
    config = {k: v for k, v in config.items() if k not in ("recipe_kind", "user_overrides")}
    config["overrides"] = {"flag": flags} if flags else {}
    return config


def _v1_validation(validation: Any) -> dict[str, Any] | None:
    if not isinstance(validation, Mapping):
        return None
    return {"metric": validation.get("metric"), "best_epoch": validation.get("best_epoch", -1),
            "best_value": validation.get("best_value"), "history": []}


def _v1_environment(env: Mapping[str, Any]) -> dict[str, Any]:
    return {"packages": dict(env.get("packages") or {}), "python": env.get("python") or "",
            "platform": env.get("platform") or "", "device": env.get("device") or "",
            "device_name": env.get("device_name"), "git": env.get("git"), "plugins": []}


def _v1_efficiency(eff: Mapping[str, Any], external: bool) -> dict[str, Any]:
    if external or not eff:
        return {"unavailable": "external predictions: no model was run" if external else
                "no efficiency figures in this record"}
    params = eff.get("parameters") or {}
    train = eff.get("train")
    out: dict[str, Any] = {
        "parameters": {"total": params.get("total", 0), "trainable": params.get("trainable", params.get("total", 0)),
                       "components": {k: v for k, v in params.items() if k not in ("total", "trainable")}}
        if params else None,
        "peak_memory": dict(eff.get("peak_memory") or {}),
        "components": dict(eff.get("components") or {}),
        "device": dict(eff.get("device") or {}),
        "settings": dict(eff.get("settings") or {}),
        "measurement_seconds": eff.get("measurement_seconds"),
    }
    if isinstance(train, Mapping) and isinstance(train.get("step_seconds"), Mapping):
        out["train"] = {"steps_timed": train.get("steps_timed", 0),
                        "warmup_steps_excluded": train.get("warmup_steps_excluded", 0),
                        "step_seconds": train["step_seconds"], "samples_per_second": train.get("samples_per_second")}
    decode = eff.get("test_set_decode")
    if isinstance(decode, Mapping):
        out["test_set_decode"] = decode
    elif eff.get("test_decode_seconds") is not None:  # the evaluate command's first shape
        seconds, studies = eff["test_decode_seconds"], eff.get("test_studies") or 0
        out["test_set_decode"] = {"seconds": seconds, "studies": studies,
                                  "seconds_per_study": seconds / studies if studies else None,
                                  "studies_per_second": studies / seconds if seconds else None}
    inference = eff.get("inference")
    out["inference"] = dict(inference) if isinstance(inference, Mapping) else {
        "unavailable": "not measured in this record (evaluation of a saved model)"}
    retrieval = eff.get("retrieval")
    if isinstance(retrieval, Mapping):
        known = {f.name for f in dataclasses.fields(Retrieval)}
        out["retrieval"] = {k: v for k, v in retrieval.items() if k in known}
    return out


# -- the generic dataclass <-> JSON codec --------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _decode(hint: Any, data: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], data, where) if len(inner) == 1 else data
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, Mapping):
            raise TypeError(f"{where}: expected an object for {hint.__name__}, got {type(data).__name__}")
        hints = typing.get_type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint) if f.init}
        unknown = sorted(set(data) - names)
        if unknown:
            raise KeyError(f"{where}: unknown field(s) {', '.join(unknown)} in {hint.__name__}")
        return hint(**{key: _decode(hints[key], value, f"{where}.{key}") for key, value in data.items()})
    if origin is list:
        if not isinstance(data, list):
            raise TypeError(f"{where}: expected a list")
        return [_decode(args[0], item, where) for item in data] if args else list(data)
    if origin is dict:
        if not isinstance(data, Mapping):
            raise TypeError(f"{where}: expected an object")
        return {str(k): _decode(args[1], v, f"{where}.{k}") for k, v in data.items()} if args else dict(data)
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise TypeError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise TypeError(f"{where}: expected an integer, got {data!r}")
        return data
    if hint is str:
        if not isinstance(data, str):
            raise TypeError(f"{where}: expected text, got {data!r}")
        return data
    if hint is bool:
        if not isinstance(data, bool):
            raise TypeError(f"{where}: expected true/false, got {data!r}")
        return data
    return data


# -- JSON Schema ---------------------------------------------------------------------------------------------
def json_schema() -> dict[str, Any]:
    """The JSON Schema of a version-2 record, generated from the dataclasses (shipped as record.schema.json)."""
    definitions: dict[str, Any] = {}
    _schema_of(RunRecord, definitions)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "rrgbench run record (results.json), schema version 2", **definitions.pop("RunRecord"),
            "$defs": dict(sorted(definitions.items()))}


def _schema_of(hint: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema_of(a, definitions) for a in args]}
    if hint is type(None):
        return {"type": "null"}
    if dataclasses.is_dataclass(hint):
        name = hint.__name__
        if name not in definitions:
            definitions[name] = {}  # placeholder against recursion
            hints = typing.get_type_hints(hint)
            fields = [f for f in dataclasses.fields(hint) if f.init]
            required = [f.name for f in fields
                        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            definitions[name] = {"type": "object", "description": (hint.__doc__ or "").strip().splitlines()[0],
                                 "properties": {f.name: _schema_of(hints[f.name], definitions) for f in fields},
                                 "required": required, "additionalProperties": False}
            if name == "RunRecord":
                definitions[name]["properties"]["schema_version"] = {"const": SCHEMA_VERSION}
                definitions[name]["properties"]["kind"] = {"enum": list(KINDS)}
        return {"$ref": f"#/$defs/{name}"}
    if origin is list:
        return {"type": "array", **({"items": _schema_of(args[0], definitions)} if args else {})}
    if origin is dict:
        return {"type": "object", **({"additionalProperties": _schema_of(args[1], definitions)}
                                     if args and args[1] is not Any else {})}
    simple = {float: {"type": "number"}, int: {"type": "integer"}, str: {"type": "string"},
              bool: {"type": "boolean"}}
    return dict(simple.get(hint, {}))


def write_json_schema(path: Path = SCHEMA_FILE) -> None:
    """Regenerate the shipped ``record.schema.json`` from the dataclasses after changing them:
    ``python -c "from rrgbench.record import write_json_schema; write_json_schema()"`` (tests/test_record.py
    fails until the shipped file equals :func:`json_schema`)."""
    from rrgbench.io import write_text

    write_text(path, json.dumps(json_schema(), indent=1, sort_keys=False) + "\n")


# -- small helpers -----------------------------------------------------------------------------------------------
def dig(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or None where a key is missing or a level is not a mapping."""
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value

