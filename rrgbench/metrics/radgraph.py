"""RadGraph F1 (Delbrouck et al., 2022) through the ``radgraph`` package, with a model folder on disk, offline.

Metric keys (per-study rewards of radgraph's ``compute_reward``; the corpus value is their mean, so bootstrap
CIs and both paired tests resample per-study scores):

* ``radgraph_f1``: the *partial* reward (RG_ER: entities with their label and whether they have a relation),
  the number usually reported as "RadGraph F1";
* ``radgraph_simple``: entities with their label (RG_E);
* ``radgraph_complete``: entities and full relations (RG_ER-bar).

As in radgraph's ``F1RadGraph``, a study whose prediction or reference is the empty string scores 0, and so
does a study where either report yields no entity. Each distinct report text is annotated once (and cached
for the process), which gives the same numbers as ``F1RadGraph`` in a fraction of the time when texts repeat.

The model folder (radgraph's own layout: ``config.json``, ``weights.th``, ``vocabulary/``; e.g. the extracted
``radgraph.tar.gz`` of StanfordAIMI/RRG_scorers) is found at ``$RRGBENCH_RADGRAPH``, either the folder itself
or a folder holding ``radgraph/``, ``radgraph-xl/`` or ``modern-radgraph-xl/`` (``$RRGBENCH_RADGRAPH_MODEL``
picks one), else in radgraph's own cache (``~/.cache/radgraph/<version>/<model>``). rrgbench never
downloads: without the folder, the package, or the model's base transformer in the offline Hugging Face cache
(its ``model_name`` in ``config.json``; a local folder path works too), every key is unavailable with the
reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from rrgbench.errors import DataError, UnavailableError
from rrgbench.metrics.base import MetricResult

RADGRAPH_KEYS = ("radgraph_f1", "radgraph_simple", "radgraph_complete")
ENV_DIR = "RRGBENCH_RADGRAPH"
ENV_MODEL = "RRGBENCH_RADGRAPH_MODEL"
MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl")
REQUIRED_FILES = ("config.json", "weights.th", "vocabulary")
NOT_INSTALLED = "radgraph package not installed: pip install radgraph (or pip install 'rrgbench[clinical]')"

_REWARD_OF_KEY = {"radgraph_simple": 0, "radgraph_f1": 1, "radgraph_complete": 2}
_DESCRIPTION = {
    "radgraph_f1": "partial reward (RG_ER): entity tokens + label + has-relation",
    "radgraph_simple": "simple reward (RG_E): entity tokens + label",
    "radgraph_complete": "complete reward (RG_ER-bar): entities and their relations",
}


@dataclass(frozen=True)
class ModelLocation:
    """A RadGraph model folder and the model type radgraph must be told."""

    folder: Path
    model_type: str


# ---------------------------------------------------------------------------------------------- locating


def radgraph_version() -> str:
    """The installed radgraph version, or UnavailableError saying how to install it."""
    try:
        return metadata.version("radgraph")
    except metadata.PackageNotFoundError:
        raise UnavailableError(NOT_INSTALLED) from None


def library_cache_dir(version: str) -> Path:
    """radgraph's own model cache (``appdirs.user_cache_dir('radgraph')/<version>``), without importing it."""
    try:
        from appdirs import user_cache_dir
    except ImportError:
        return Path.home() / ".cache" / "radgraph" / version
    return Path(user_cache_dir("radgraph")) / version


def _is_model_folder(folder: Path) -> bool:
    return all((folder / name).exists() for name in REQUIRED_FILES)


def model_type_of(folder: Path) -> str:
    """The model type a folder was trained as: the dataset prefix of its ``<type>__ner_labels`` vocabulary."""
    for path in sorted((folder / "vocabulary").glob("*__ner_labels.txt")):
        prefix = path.name.split("__", 1)[0]
        if prefix in MODEL_TYPES:
            return prefix
    if folder.name in MODEL_TYPES:
        return folder.name
    raise UnavailableError(f"RadGraph folder {folder} has no <type>__ner_labels vocabulary for one of "
                           f"{', '.join(MODEL_TYPES)}")


def _wanted_types() -> tuple[str, ...]:
    wanted = os.environ.get(ENV_MODEL, "").strip()
    if not wanted:
        return MODEL_TYPES
    if wanted not in MODEL_TYPES:
        raise UnavailableError(f"{ENV_MODEL}={wanted} is not one of {', '.join(MODEL_TYPES)}")
    return (wanted,)


def find_model(root: str | os.PathLike[str] | None = None) -> ModelLocation:
    """The RadGraph model folder: ``root``, else ``$RRGBENCH_RADGRAPH``, else radgraph's cache."""
    version = radgraph_version()
    explicit = str(root) if root else os.environ.get(ENV_DIR, "")
    base = Path(explicit).expanduser() if explicit else library_cache_dir(version)
    if _is_model_folder(base):
        return ModelLocation(base, model_type_of(base))
    for model_type in _wanted_types():
        folder = base / model_type
        if _is_model_folder(folder):
            return ModelLocation(folder, model_type_of(folder))
    raise UnavailableError(
        f"RadGraph model not found at {base}: extract radgraph.tar.gz (StanfordAIMI/RRG_scorers; config.json, "
        f"weights.th, vocabulary/) into {base / 'radgraph'} or set {ENV_DIR}=DIR"
    )


def base_transformer(location: ModelLocation) -> str:
    """The base transformer the model's ``config.json`` names; UnavailableError if not on disk offline."""
    try:
        config = json.loads((location.folder / "config.json").read_text(encoding="utf-8"))
        name = config["model"]["embedder"]["token_embedders"]["bert"]["model_name"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnavailableError(f"unreadable RadGraph config {location.folder / 'config.json'}: {exc}") from None
    if Path(name).expanduser().is_dir() or _in_hub_cache(name):
        return name
    raise UnavailableError(
        f"RadGraph's base transformer '{name}' is not in the offline Hugging Face cache: cache it once online, "
        f"or set model_name in {location.folder / 'config.json'} to a local folder with its config and tokenizer"
    )


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(name, "config.json"), str)


# ---------------------------------------------------------------------------------------------- model


@contextlib.contextmanager
def _cache_layout(location: ModelLocation) -> Iterator[Path]:
    """A folder ``D`` with ``D/<model_type>`` = the model (radgraph's required layout); a symlink if needed."""
    if location.folder.name == location.model_type:
        yield location.folder.parent
        return
    with tempfile.TemporaryDirectory(prefix="rrgbench-radgraph-") as tmp:
        (Path(tmp) / location.model_type).symlink_to(location.folder.resolve(), target_is_directory=True)
        yield Path(tmp)


@dataclass
class Annotator:
    """A loaded RadGraph model with a per-text annotation cache."""

    model: Any
    location: ModelLocation
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    def annotate(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """RadGraph annotations (entities with relations) of each text, in order."""
        from rrgbench.logs import in_chunks

        todo = list(dict.fromkeys(text for text in texts if text not in self.cache))
        if todo:
            in_chunks(self._annotate_new, todo, "RadGraph annotation", chunk=128)
        return [self.cache[text] for text in texts]

    def _annotate_new(self, todo: list[str]) -> list[None]:
        """Annotate texts not cached yet (one model call) and cache the results."""
        with contextlib.redirect_stdout(sys.stderr):
            found = self.model(todo)
        failed = [text for i, text in enumerate(todo) if str(i) not in found]
        if failed:
            raise UnavailableError(f"RadGraph failed to annotate {len(failed)} report(s), e.g. {failed[0]!r}")
        self.cache.update({text: found[str(i)] for i, text in enumerate(todo)})
        return [None] * len(todo)


@lru_cache(maxsize=1)
def load_annotator(folder: str, model_type: str) -> Annotator:
    """radgraph's ``RadGraph`` on the given model folder (cached: one model per process)."""
    location = ModelLocation(Path(folder), model_type)
    base_transformer(location)
    try:
        from radgraph import RadGraph
    except ImportError as exc:
        raise UnavailableError(f"{NOT_INSTALLED} ({exc})") from None
    try:
        with _cache_layout(location) as cache_dir, contextlib.redirect_stdout(sys.stderr):
            model = RadGraph(model_type=model_type, model_cache_dir=str(cache_dir))
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise UnavailableError(f"cannot load the RadGraph model in {folder}: {exc}") from None
    return Annotator(model, location)


# ---------------------------------------------------------------------------------------------- scores


def study_rewards(hyp: dict[str, Any] | None, ref: dict[str, Any] | None) -> tuple[float, float, float]:
    """(simple, partial, complete) of one study; None stands for an empty report (scores 0)."""
    if hyp is None or ref is None:
        return 0.0, 0.0, 0.0
    from radgraph.rewards import compute_reward

    simple, partial, complete = compute_reward(hyp, ref, "all")
    return float(simple), float(partial), float(complete)


def radgraph_rewards(predictions: Sequence[str], references: Sequence[str],
                     annotator: Annotator) -> list[tuple[float, float, float]]:
    """Per-study (simple, partial, complete) rewards, as radgraph's ``F1RadGraph(reward_level='all')``."""
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references")
    scored = [i for i, (h, r) in enumerate(zip(predictions, references, strict=True)) if h and r]
    texts = [predictions[i] for i in scored] + [references[i] for i in scored]
    annotations = annotator.annotate(texts)
    by_study: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {
        study: (annotations[k], annotations[k + len(scored)]) for k, study in enumerate(scored)
    }
    return [study_rewards(*by_study.get(i, (None, None))) for i in range(len(predictions))]


def score_radgraph(predictions: Sequence[str], references: Sequence[str],
                   root: str | os.PathLike[str] | None = None) -> dict[str, MetricResult]:
    """The three RadGraph keys; UnavailableError (with the reason) when the package or model is missing."""
    location = find_model(root)
    annotator = load_annotator(str(location.folder), location.model_type)
    rewards = radgraph_rewards(list(predictions), list(references), annotator)
    results = {}
    for key in RADGRAPH_KEYS:
        scores = [row[_REWARD_OF_KEY[key]] for row in rewards]
        results[key] = MetricResult(
            value=sum(scores) / len(scores) if scores else None,
            per_sample=scores if scores else None,
            unavailable=None if scores else "no studies to score",
            details={"reward": _DESCRIPTION[key], "model_type": location.model_type,
                     "model_folder": str(location.folder), "n_studies": len(scores),
                     "resampling": "mean of per-study rewards"},
        )
    return results


def protocol_entry(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What a record should say about how RadGraph was computed."""
    location = find_model(root)
    return {"package": f"radgraph {radgraph_version()}", "model_type": location.model_type,
            "model_folder": str(location.folder), "keys": dict(_DESCRIPTION),
            "empty_report": "studies with an empty prediction or reference score 0 (as F1RadGraph)"}
