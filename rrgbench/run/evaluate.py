"""Evaluation and prediction: decoding a split, rebuilding a saved model, scoring it, one report for one study.

:func:`decode_loader` is the one place studies are decoded (validation, test, evaluation).
:func:`evaluate_checkpoint` and :func:`predict_report` rebuild the model from a checkpoint alone (its
config, vocabulary and weights, loaded weights-only after the checksum is verified) or from an exported
``model.safetensors`` with the ``model.json`` and ``vocab.json`` beside it (:mod:`rrgbench.run.export`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rrgbench.config import COMPONENT_KINDS, DataOptions, DecodeOptions, RunConfig, ScoringOptions
from rrgbench.data.loader import StudyDataset, loader_workers, make_loader
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.decode import generate
from rrgbench.errors import ConfigError, DataError, did_you_mean
from rrgbench.extension.components import ImageStats
from rrgbench.extension.options import as_dict, validate
from rrgbench.extension.plugins import Registry
from rrgbench.logs import Progress, Say, phase
from rrgbench.model import ReportGenerator, build_model
from rrgbench.record import DecodeCost, Efficiency, Inference, Parameters
from rrgbench.run import distributed
from rrgbench.run.checkpoint import load_checkpoint
from rrgbench.run.environment import environment
from rrgbench.run.layout import RunDir, create_run
from rrgbench.run.request import RunRequest
from rrgbench.run.results import (
    check_scoring,
    protocol_for,
    run_record,
    score_rows,
    scoring_context,
    summary_line,
)
from rrgbench.run.setup import (
    autocast,
    configure_determinism,
    context_for,
    count_parameters,
    load_source,
    resolve_device,
)
from rrgbench.run.writer import RunWriter


def decode_loader(model: ReportGenerator, loader: Any, config: RunConfig, tokenizer: Tokenizer,
                  device: torch.device, progress: bool = False, method: str | None = None,
                  on_batch: Callable[[], None] | None = None, say: Say | None = None,
                  desc: str = "decode") -> list[dict[str, str]]:
    """Decode every study of a loader; rows keep the dataset's ids and the raw reference.

    ``progress``: a bar (on a terminal); otherwise, when ``say`` is given, plain progress lines through it.
    ``on_batch`` runs after each batch (the trainer stops there on SIGINT/SIGTERM).
    """
    model.eval()
    rows = []
    tracker = Progress(desc, len(loader.sampler), unit="studies", bar=progress, say=say or (lambda _: None))
    for batch in loader:
        with autocast(device, config):
            ids = generate(model, batch.images.to(device), method or config.decode.method, config.decode.beam_size,
                           config.decode_max_len, tokenizer.bos_id, tokenizer.eos_id)
        for study_id, tokens, reference in zip(batch.ids, ids, batch.reports, strict=True):
            rows.append({"id": study_id, "prediction": tokenizer.decode(tokens), "reference_raw": reference})
        tracker.update(len(batch.ids))
        if on_batch is not None:
            on_batch()
    tracker.close()
    return rows


def parameter_counts(model: ReportGenerator) -> Parameters:
    """Total, trainable and per-component parameter counts."""
    return Parameters(total=count_parameters(model), trainable=count_parameters(model, trainable=True),
                      components={kind: count_parameters(getattr(model, kind)) for kind in COMPONENT_KINDS})


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint or an export alone (config, vocabulary and weights all from it)."""

    model: ReportGenerator
    config: RunConfig
    tokenizer: Tokenizer
    meta: dict[str, Any]
    path: Path

    @property
    def n_views(self) -> int:
        return int(self.meta["n_views"])

    @property
    def image_stats(self) -> ImageStats:
        """The normalisation the model was trained with (recorded with it; else what its encoder says)."""
        recorded = self.meta.get("image_stats")
        if isinstance(recorded, dict):
            return ImageStats(mean=tuple(recorded["mean"]), std=tuple(recorded["std"]),
                              interpolation=str(recorded["interpolation"]))
        return self.model.encoder.image_stats()


def load_trained(registry: Registry, checkpoint: Path | str, device: torch.device) -> TrainedModel:
    """Verify and safely load ``checkpoint`` (checksum, weights-only) or an exported ``model.safetensors`` (or
    a run directory holding one), then rebuild its model in eval mode."""
    from rrgbench.run.export import is_export

    path = Path(checkpoint)
    if is_export(path):
        return _load_export(registry, path, device)
    payload, meta = load_checkpoint(path)
    missing = [key for key in ("config", "vocab", "n_views") if key not in meta]
    if missing or "model" not in payload:
        absent = ", ".join(missing) or "model weights"
        raise DataError(f"{path}: not an rrgbench training checkpoint (its metadata lacks {absent})")
    try:
        config = RunConfig.from_dict(meta["config"], registry)
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from None
    tokenizer = Tokenizer.from_dict(meta["vocab"])
    model = build_model(registry, config, context_for(config, tokenizer, int(meta["n_views"]), load_weights=False))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise DataError(f"{path}: the weights do not fit the model its config describes ({first})") from None
    return TrainedModel(model.to(device).eval(), config, tokenizer, meta, path)


def _load_export(registry: Registry, path: Path, device: torch.device) -> TrainedModel:
    from rrgbench.run.export import load_weights, read_export

    weights, meta, vocab = read_export(path)
    try:
        config = RunConfig.from_dict(meta["config"], registry)
    except (ConfigError, KeyError) as exc:
        raise DataError(f"{weights}: {exc}") from None
    tokenizer = Tokenizer.from_dict(vocab)
    model = build_model(registry, config, context_for(config, tokenizer, int(meta["n_views"]), load_weights=False))
    load_weights(model, weights)
    return TrainedModel(model.to(device).eval(), config, tokenizer, {"name": "model", **meta}, weights)


EVAL_DATA_KEYS = ("eval_batch_size", "num_workers", "allow_missing")
EVAL_SECTIONS = ("dataset", "decode", "data", "scoring")


def evaluation_config(registry: Registry, trained: RunConfig, dataset: str | None,
                      overrides: dict[str, str]) -> RunConfig:
    """The checkpoint's config on ``dataset``, with evaluation-time overrides (dataset.*, decode.*, scoring.*,
    a few data.*)."""
    dataset = dataset or trained.dataset
    entry = registry.get("dataset", dataset)
    grouped: dict[str, dict[str, str]] = {section: {} for section in EVAL_SECTIONS}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in grouped or (section == "data" and name not in EVAL_DATA_KEYS):
            allowed = ["dataset.*", "decode.*", "scoring.*", *(f"data.{k}" for k in EVAL_DATA_KEYS)]
            raise ConfigError(f"--set {key}: only {', '.join(allowed)} can change at evaluation; everything else is "
                              f"fixed by the checkpoint{did_you_mean(key, [a for a in allowed if '*' not in a])}")
        grouped[section][name] = value
    base = as_dict(trained.dataset_options) if dataset == trained.dataset else {}
    sections = {
        "dataset": validate(entry.options, {**base, **grouped["dataset"]}, f"dataset '{dataset}'"),
        "decode": validate(DecodeOptions, {**as_dict(trained.decode), **grouped["decode"]}, "decode"),
        "data": validate(DataOptions, {**as_dict(trained.data), **grouped["data"]}, "data"),
    }
    if grouped["scoring"]:
        sections["scoring"] = validate(ScoringOptions, {**as_dict(trained.scoring), **grouped["scoring"]}, "scoring")
    flags = {**trained.overrides.get("flag", {}), **overrides}
    return dataclasses.replace(trained.replace(**sections), dataset=dataset,
                               overrides={**trained.overrides, "flag": flags})


def evaluate_checkpoint(registry: Registry, checkpoint: Path | str, request: RunRequest, dataset: str | None = None,
                        overrides: dict[str, str] | None = None) -> RunDir:
    """Decode and score a dataset's test split with a saved checkpoint; write a run record in ``request.out``.

    Nothing else happens before the checkpoint is verified and loaded (weights-only): a pickle that
    carries code is refused. The record is of kind ``evaluation``; ``protocol.evaluation`` names the
    checkpoint, its SHA-256, name, step and training dataset. Evaluation runs in one process.
    """
    if distributed.env_info().enabled:
        raise ConfigError("rrgbench evaluate runs in a single process; start it without torchrun")
    device = resolve_device(request.device)
    configure_determinism(device)
    trained = load_trained(registry, checkpoint, device)
    config = evaluation_config(registry, trained.config, dataset, overrides or {})
    check_scoring(registry, [config], request.files)  # a missing or wrong --chexbert file fails before decoding
    context = scoring_context(config, registry, request.files)
    source = load_source(registry, config, request.data_dir)
    if source.n_views != trained.n_views:
        raise DataError(f"dataset '{config.dataset}' has {source.n_views} view(s) per study but the checkpoint's "
                        f"model takes {trained.n_views}")
    run = create_run(request.out, config)
    writer = RunWriter(run)
    try:
        writer.vocabulary(trained.tokenizer)
        studies = StudyDataset(source.splits["test"], source.image_root, trained.tokenizer, config.data, train=False,
                               stats=trained.image_stats)
        loader = make_loader(studies, config.data.eval_batch_size, shuffle=False,
                             num_workers=loader_workers(config.data), seed=config.seed)
        start = time.perf_counter()
        with phase("decoding test", request.log):
            rows = decode_loader(trained.model, loader, config, trained.tokenizer, device, request.progress,
                                 say=request.log, desc="decode test")
        seconds = time.perf_counter() - start
        with phase(f"scoring {len(rows)} test studies", request.log):
            scores = score_rows(rows, source.cleaning_style, context)
        writer.outputs(rows, scores.per_study([r["id"] for r in rows]), scores.tables)
        origin = str(trained.path.resolve())
        evaluation = {"checkpoint": origin, "sha256": trained.meta.get("sha256"), "name": trained.meta.get("name"),
                      "trained_on": trained.config.dataset, "step": trained.meta.get("step")}
        record = run_record(
            "evaluation", run.run_id, config, registry, rows, scores,
            protocol=protocol_for(config, source, trained.tokenizer, context, scores,
                                  dict(trained.meta.get("init_report") or {}), evaluation=evaluation),
            efficiency=Efficiency(parameters=parameter_counts(trained.model),
                                  test_set_decode=decode_cost(seconds, len(rows)),
                                  inference=Inference(unavailable="not measured when evaluating a saved model "
                                                                  "(the training run's record has these figures)")),
            environment=environment(str(device)), evaluated_from=origin)
        writer.record(record)
        writer.status("finished", evaluated_from=origin)
        request.log(summary_line(record))
    except BaseException as exc:
        writer.failed(exc)
        raise
    finally:
        run.unlock()
    return run


def decode_cost(seconds: float | None, studies: int) -> DecodeCost:
    """Wall time of the real test-set decode (data loading included)."""
    per_study = seconds / studies if seconds is not None and studies else None
    return DecodeCost(seconds=seconds, studies=studies, seconds_per_study=per_study,
                      studies_per_second=1.0 / per_study if per_study else None)


def predict_report(registry: Registry, checkpoint: Path | str, images: Sequence[Path | str], device: str = "auto",
                   overrides: dict[str, str] | None = None) -> str:
    """The report a checkpoint writes for one study; ``images`` are its views in the training order."""
    from rrgbench.data.images import load_image
    from rrgbench.data.loader import image_transform

    torch_device = resolve_device(device)
    trained = load_trained(registry, checkpoint, torch_device)
    if len(images) != trained.n_views:
        raise DataError(f"the checkpoint's model takes {trained.n_views} image(s) per study (views in the order it "
                        f"was trained on), got {len(images)}")
    config = evaluation_config(registry, trained.config, None, overrides or {})
    transform = image_transform(config.data, train=False, stats=trained.image_stats)
    views = torch.stack([transform(load_image(Path(image))) for image in images])[None].to(torch_device)
    with autocast(torch_device, config):
        ids = generate(trained.model, views, config.decode.method, config.decode.beam_size, config.decode_max_len,
                       trained.tokenizer.bos_id, trained.tokenizer.eos_id)
    return trained.tokenizer.decode(ids[0])
