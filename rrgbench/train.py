"""Training and evaluation of one run: data -> vocabulary -> model -> epochs -> selection -> test -> record.

Protocol guarantees: the vocabulary is built on train reports only and saved with the run and every
checkpoint; the checkpoint is selected on the validation split only (``train.select_metric``); the
test split is decoded exactly once, at the end, with the selected weights; references are cleaned
but never truncated for scoring.

Exact resume (:mod:`rrgbench.resume`): ``checkpoints/last`` is written at the end of every epoch and
every ``train.checkpoint_every`` steps with the model, optimizer, scheduler, AMP scaler, every RNG
state (per rank) and the position ``(epoch, batch)``; SIGINT/SIGTERM write it at the next step before
the run stops (status ``interrupted``). A resumed run skips exactly the batches already trained and
ends with the same predictions and metrics as an uninterrupted one (CPU, fixed seed). Validation-based
selection (best value, epoch and checkpoint) survives the resume. CPU runs use deterministic kernels.

Multi-process training (:mod:`rrgbench.distributed`): under ``torchrun`` the model trains with
DistributedDataParallel on a global batch of ``data.batch_size`` split over the ranks; the token-level
generation loss is re-weighted by each rank's share of target tokens so that the averaged gradient
equals the single-process one; validation and test decoding are sharded and gathered in study order;
only rank 0 writes. Decoding always calls ``prepare``/``step`` on the unwrapped model.

Evaluation of a saved checkpoint (:func:`evaluate_checkpoint`) and single-study inference
(:func:`predict_report`) rebuild the model from the checkpoint's own config and vocabulary.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrgbench import distributed
from rrgbench.checkpoint import (
    link_checkpoint,
    load_checkpoint,
    load_latest,
    previous_path,
    read_meta,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from rrgbench.components import BuildContext
from rrgbench.config import DataOptions, DecodeOptions, RunConfig
from rrgbench.data.cleaning import clean_report
from rrgbench.data.loader import Batch, StudyDataset, make_loader
from rrgbench.data.source import DatasetSource
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.decode import generate
from rrgbench.errors import ConfigError, DataError
from rrgbench.io import write_json, write_jsonl
from rrgbench.model import ReportGenerator, build_model
from rrgbench.options import as_dict, validate
from rrgbench.plugins import Registry
from rrgbench.resume import RunInterrupted, SeededSamples, StopSignals, near_misses, resolve_resume, truncate_log
from rrgbench.runs import RunDir, create_run, environment, results_record
from rrgbench.scoring import ScoringContext, score

Logger = Callable[[str], None]


@dataclass
class RunRequest:
    """Everything about a run that is not part of its configuration."""

    data_dir: str | None = None
    out: Path = Path("runs")
    device: str = "auto"
    progress: bool = True
    log: Logger = print
    scoring: ScoringContext = field(default_factory=ScoringContext)
    resume: str | None = None  # "auto": the latest unfinished run with this config in ``out``; or a run directory


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but no CUDA device is available; use --device cpu or auto")
    if requested not in ("cpu",) and not requested.startswith("cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N], got '{requested}'")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(device: torch.device) -> None:
    """Deterministic kernels on CPU (warn-only for an op that has none); CUDA keeps its fast kernels.

    ``torch.use_deterministic_algorithms`` also imports ``torch._inductor`` only to set its flag
    (seconds per process start, and rrgbench does not compile); the kernel switch is set directly
    when that private entry point exists, and inductor's flag too when inductor is already loaded.
    """
    if device.type != "cpu":
        return
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        setter(True, warn_only=True)


def load_source(registry: Registry, config: RunConfig, data_dir: str | None) -> DatasetSource:
    entry = registry.get("dataset", config.dataset)
    options = validate(entry.options, config.sections["dataset"], f"dataset '{config.dataset}'")
    source = entry.load()(options, data_dir, allow_missing=config.sections["data"]["allow_missing"])
    for split in ("train", "val", "test"):
        if not source.splits.get(split):
            raise DataError(f"dataset '{config.dataset}': split '{split}' is empty; every split needs studies")
    return source


def build_context(config: RunConfig, tokenizer: Tokenizer, source: DatasetSource) -> BuildContext:
    return context_for(config, tokenizer, source.n_views)


def context_for(config: RunConfig, tokenizer: Tokenizer, n_views: int) -> BuildContext:
    data = config.sections["data"]
    return BuildContext(d_model=config.sections["model"]["d_model"], vocab_size=len(tokenizer),
                        pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                        max_len=data["max_len"], n_views=n_views, image_size=data["image_size"])


def make_optimizer(model: ReportGenerator, train: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam with two learning rates: the visual extractor's and everything else's."""
    visual = [p for p in model.encoder.parameters() if p.requires_grad]
    visual_ids = {id(p) for p in visual}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in visual_ids]
    groups = [g for g in ({"params": visual, "lr": train["lr_visual"]}, {"params": rest, "lr": train["lr"]})
              if g["params"]]
    if not groups:
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    # The fused kernel updates a whole tensor per call; on 2 CPU cores it cut the small profile's training
    # step from 0.46 s to 0.37 s (measured); the update rule is the same (rounding may differ in the last bits).
    fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    return torch.optim.Adam(groups, weight_decay=train["weight_decay"], amsgrad=train["amsgrad"],
                            betas=(train["beta1"], train["beta2"]), eps=train["eps"], fused=fused)


def decode_loader(model: ReportGenerator, loader: Any, config: RunConfig, tokenizer: Tokenizer,
                  device: torch.device, progress: bool = False, method: str | None = None,
                  on_batch: Callable[[], None] | None = None) -> list[dict[str, str]]:
    """Decode every study of a loader; rows keep the dataset's ids and the raw reference.

    ``on_batch`` runs after each batch (the trainer stops there on SIGINT/SIGTERM).
    """
    from tqdm import tqdm

    dec = config.sections["decode"]
    max_len = dec["max_len"] or config.sections["data"]["max_len"]
    model.eval()
    rows = []
    for batch in tqdm(loader, desc="decode", disable=not progress, leave=False):
        with autocast(device, config):
            ids = generate(model, batch.images.to(device), method or dec["method"], dec["beam_size"], max_len,
                           tokenizer.bos_id, tokenizer.eos_id)
        for study_id, tokens, reference in zip(batch.ids, ids, batch.reports, strict=True):
            rows.append({"id": study_id, "prediction": tokenizer.decode(tokens), "reference_raw": reference})
        if on_batch is not None:
            on_batch()
    return rows


def autocast(device: torch.device, config: RunConfig) -> Any:
    enabled = device.type == "cuda" and config.sections["train"]["amp"]
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def score_predictions(run: RunDir, registry: Registry, rows: list[dict[str, str]], cleaning_style: str,
                      scoring: ScoringContext) -> Any:
    """Clean the references, write predictions.jsonl and scores.jsonl, return the scores."""
    for row in rows:
        row["reference"] = clean_report(row.pop("reference_raw"), cleaning_style)
    write_jsonl(run.path / "predictions.jsonl", rows)
    scoring.registry, scoring.output_dir = registry, run.path
    scores = score([r["prediction"] for r in rows], [r["reference"] for r in rows], scoring)
    write_jsonl(run.path / "scores.jsonl", scores.per_study([r["id"] for r in rows]))
    return scores


def protocol_record(config: RunConfig, source: DatasetSource, tokenizer: Tokenizer, scoring: ScoringContext,
                    init_report: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The ``protocol`` block of a run record."""
    data, dec = config.sections["data"], config.sections["decode"]
    return {
        "splits": source.sizes(),
        "cleaning": source.cleaning_style,
        "references": "cleaned with the dataset's R2Gen cleaning, never truncated",
        "vocabulary": {"size": len(tokenizer), "threshold": tokenizer.threshold, "built_on": "train"},
        "max_len": data["max_len"],
        "decode": {"method": dec["method"], "beam_size": dec["beam_size"],
                   "max_len": dec["max_len"] or data["max_len"]},
        "selection": {"split": "val", "metric": config.sections["train"]["select_metric"]},
        "bootstrap": {"resamples": scoring.n_resamples, "seed": scoring.seed, "level": 0.95, "unit": "study"},
        "profile": config.profile,
        "initialization": init_report,
        **source.notes,
        **extra,
    }


class Trainer:
    """One run's training loop, validation-based selection, and final test evaluation.

    Position bookkeeping: ``epoch`` is the epoch in progress and ``batch`` the number of its batches
    already trained (``step`` counts batches over the whole run). Every checkpoint records the three,
    so a resumed run continues at exactly that batch of the same epoch order.
    """

    def __init__(self, registry: Registry, config: RunConfig, request: RunRequest) -> None:
        self.registry, self.config, self.request = registry, config, request
        self.dist = distributed.setup(request.device)
        self.device = resolve_device(distributed.device_for(request.device, self.dist))
        self.log = distributed.silence(self.dist, request.log)
        self.progress = request.progress and self.dist.is_main
        configure_determinism(self.device)
        self.source = distributed.main_first(lambda: load_source(registry, config, request.data_dir))
        data = config.sections["data"]
        train_reports = [s.report for s in self.source.splits["train"]]
        self.tokenizer = Tokenizer.build(train_reports, data["threshold"], self.source.cleaning_style)
        seed_everything(config.seed)  # after the data: a dataset plugin drawing from global RNGs cannot shift it
        self.model = build_model(registry, config, build_context(config, self.tokenizer, self.source)).to(self.device)
        self.optimizer = make_optimizer(self.model, config.sections["train"])
        tr = config.sections["train"]
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=tr["step_size"], gamma=tr["gamma"])
        self.scaler: Any = None  # bf16 autocast needs no GradScaler; a float16 one would be saved and restored
        self.train_module: torch.nn.Module = self.model  # the DDP wrapper in a multi-process job
        self.local_batch_size = self._local_batch_size()
        # data.cache_images: decoded images kept for the whole run (worker processes could not share it)
        caching = data.get("cache_images") and not data["num_workers"]
        self.decoded_images: dict[str, Any] | None = {} if caching else None
        self.run: RunDir | None = None
        self.epoch, self.batch, self.step = 0, 0, 0
        self.best_value, self.best_epoch, self.best_step = float("-inf"), -1, -1
        self.timings: dict[str, list[float]] = {"train_step": [], "samples": []}
        self.init_report: dict[str, Any] = {}
        self.log_rows = 0
        self.resumed_from: str | None = None
        self.stop = StopSignals()
        self._dirty = False  # trained since ``last`` was written

    def _local_batch_size(self) -> int:
        size, world = self.config.sections["data"]["batch_size"], self.dist.world_size
        if size % world:
            raise ConfigError(f"data.batch_size {size} is the global batch and must be divisible by the number of "
                              f"processes ({world})")
        return size // world

    # -- data ---------------------------------------------------------------------------------
    def loader(self, split: str, train: bool, indices: Sequence[int] | None = None) -> Any:
        """A loader over ``split`` (in ``indices`` order when given); training samples are seeded per sample."""
        data = self.config.sections["data"]
        dataset: Any = StudyDataset(self.source.splits[split], self.source.image_root, self.tokenizer, data, train,
                                    decoded=self.decoded_images)
        if train:
            dataset = SeededSamples(dataset, self.config.seed, self.epoch)
        size = self.local_batch_size if train else data["eval_batch_size"]
        return make_loader(dataset, size, shuffle=train and indices is None, num_workers=data["num_workers"],
                           seed=self.config.seed + self.epoch, sampler=None if indices is None else list(indices))

    def epoch_plan(self) -> tuple[list[int], int]:
        """This rank's study order for the current epoch (a function of seed and epoch) and its batch count."""
        indices = distributed.shard_indices(len(self.source.splits["train"]), self.dist, shuffle=True,
                                            seed=self.config.seed, epoch=self.epoch)
        n_batches = math.ceil(len(indices) / self.local_batch_size)
        cap = self.config.sections["train"]["max_steps_per_epoch"]
        return indices, min(n_batches, cap) if cap else n_batches

    def decode_split(self, split: str) -> list[dict[str, str]]:
        """Decode a split (sharded over ranks), rows in the split's study order on every rank."""
        indices = distributed.shard_indices(len(self.source.splits[split]), self.dist, shuffle=False,
                                            seed=self.config.seed, epoch=0)
        rows = decode_loader(self.model, self.loader(split, train=False, indices=indices), self.config, self.tokenizer,
                             self.device, self.progress, on_batch=self.check_stop)
        return distributed.gather_in_order(rows, indices)

    # -- the run ------------------------------------------------------------------------------
    def start(self) -> RunDir:
        self.run = create_run(self.request.out, self.config)
        self.tokenizer.save(self.run.path / "vocab.json")
        return self.run

    def fit(self) -> RunDir | None:
        """Train (or continue), select on validation, decode and score the test split; rank 0 gets the run."""
        if self.run is None and self.dist.is_main:
            self.start()
        with self.stop:
            try:
                self._fit()
            except (RunInterrupted, KeyboardInterrupt) as exc:
                signum = exc.signum if isinstance(exc, RunInterrupted) else int(signal.SIGINT)
                self._set_status("interrupted", signal=signal.Signals(signum).name, step=self.step,
                                 error=str(exc)[:500] or "interrupted")
                raise
            except BaseException as exc:
                self._set_status("failed", error=f"{type(exc).__name__}: {exc}"[:500])
                raise
        return self.run

    def _fit(self) -> None:
        where = self.run.path if self.run else "(rank > 0)"
        self.log(f"run {where}  ({self.config.model} on {self.config.dataset}, profile {self.config.profile}, "
                 f"{_count(self.model):,} parameters, vocabulary {len(self.tokenizer)}, device {self.device}"
                 + (f", {self.dist.world_size} processes" if self.dist.enabled else "") + ")")
        if self.resumed_from is None:
            self.initialize_components()
        self.train_module = distributed.wrap(self.model, self.dist, self.device)
        epochs = self.config.sections["train"]["epochs"]
        if epochs and not any(p.requires_grad for p in self.model.parameters()):
            self.log(f"{self.config.model} has no trainable parameter: skipping {epochs} training epoch(s)")
            epochs = 0
        while self.epoch < epochs:
            self.train_epoch()
            self.validate_and_checkpoint()
        self.finish()

    def _set_status(self, status: str, **extra: Any) -> None:
        if self.run is not None and self.dist.is_main:
            self.run.set_status(status, **extra)

    def _start_rank_streams(self) -> None:
        """Ranks > 0 draw dropout from their own streams (rank 0 continues the single-process one)."""
        if self.dist.rank > 0:
            seed = self.config.seed + 1_000_003 * self.dist.rank
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)

    def initialize_components(self) -> None:
        """Data-driven initialisation on every rank (same data, same weights), then rank 0's state everywhere."""
        wanting = self.model.components_wanting_initialization()
        if wanting:
            start = time.perf_counter()
            summary = self.model.summarize(b.to(self.device) for b in self.loader("train", train=False))
            for component in wanting:
                self.init_report[type(component).__name__] = component.initialize(summary)
            self.init_report["seconds_total"] = time.perf_counter() - start
            distributed.broadcast_module(self.model)
            self._log_row({"event": "initialize", **self.init_report})
        self._start_rank_streams()
        if wanting:
            self.save("last")  # a resume need not initialise again

    def train_epoch(self) -> None:
        """Train the rest of the current epoch, from batch ``self.batch`` of its order."""
        from tqdm import tqdm

        tr = self.config.sections["train"]
        indices, n_batches = self.epoch_plan()
        remaining = indices[self.batch * self.local_batch_size: n_batches * self.local_batch_size]
        self.model.train()
        loader = self.loader("train", train=True, indices=remaining)
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{tr['epochs']}", disable=not self.progress, leave=False)
        for batch in bar:
            terms = self.train_step(batch.to(self.device))
            self.batch += 1
            bar.set_postfix(loss=f"{terms['loss']:.3f}", samples_s=f"{self._throughput():.1f}")
            if self.step % 10 == 0:
                self._log_row({"event": "step", "epoch": self.epoch, "step": self.step, **terms})
            if tr["checkpoint_every"] and self.step % tr["checkpoint_every"] == 0:
                self.save("last")
            self.check_stop()

    def train_step(self, batch: Batch) -> dict[str, float]:
        tr = self.config.sections["train"]
        start = time.perf_counter()
        with autocast(self.device, self.config):
            out = self.train_module(batch.images, batch.target_ids)
        loss = self._rank_loss(out.loss, out.terms, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tr["clip_value"]:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), tr["clip_value"])
        if tr["clip_norm"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tr["clip_norm"], foreach=True)
        self.optimizer.step()
        self._dirty = True
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.timings["train_step"].append(time.perf_counter() - start)
        self.timings["samples"].append(len(batch.ids))
        self.step += 1
        return {"loss": float(out.loss.detach()), **{k: float(v.detach()) for k, v in out.terms.items()}}

    def _rank_loss(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Weight this rank's mean token loss by its share of the global batch's target tokens.

        DDP averages gradients over ranks; with the weight, the average is the gradient of the global
        token mean, as in one process. Auxiliary terms (batch-level losses) are averaged as they are.
        """
        if not self.dist.enabled or "gen" not in terms:
            return loss
        tokens = float((batch.target_ids[:, 1:] != self.tokenizer.pad_id).sum())
        total = distributed.all_reduce(tokens)
        share = tokens * self.dist.world_size / total if total else 1.0
        return terms["gen"] * share + (loss - terms["gen"])

    def _throughput(self) -> float:
        seconds = sum(self.timings["train_step"][-20:])
        return sum(self.timings["samples"][-20:]) / seconds if seconds else 0.0

    def check_stop(self) -> None:
        """A safe point: after SIGINT/SIGTERM (on any rank) write the position to ``last`` and stop."""
        signum = int(distributed.all_reduce(float(self.stop.requested or 0), op="max"))
        if not signum:
            return
        where = f"epoch {self.epoch + 1}, batch {self.batch}, step {self.step}"
        if self._dirty:
            self.log(f"{signal.Signals(signum).name}: writing a checkpoint at {where}, then stopping")
            self.save("last")
        target = f" --resume {self.run.path}" if self.run else " --resume"
        raise RunInterrupted(f"run interrupted by {signal.Signals(signum).name} at {where}; the checkpoint is "
                             f"saved, continue with: rrgbench run ...{target}", signum)

    def validate_and_checkpoint(self) -> None:
        """End of an epoch: validate, step the scheduler, write ``last`` (and ``best`` when it improved)."""
        train = self.config.sections["train"]
        metric, epoch = train["select_metric"], self.epoch
        validated = epoch + 1 >= train.get("validate_from", 1) or epoch + 1 == train["epochs"]
        improved = False
        if validated:
            rows = self.decode_split("val")
            value = distributed.on_main(lambda: self.selection_value(rows, metric))
            improved = value > self.best_value
            if improved:
                self.best_value, self.best_epoch, self.best_step = value, epoch, self.step
            self._log_row({"event": "validate", "epoch": epoch, "step": self.step, "metric": metric, "value": value,
                           "best_epoch": self.best_epoch})
        self.scheduler.step()
        self.epoch, self.batch = epoch + 1, 0
        self.save("last")
        if improved and self.run is not None and self.dist.is_main:
            link_checkpoint(self.run.checkpoints / "last.pt", self.run.checkpoints / "best.pt", name="best")
        if validated:
            self.log(f"epoch {epoch + 1}: val {metric} {value:.4f}{'  (best)' if improved else ''}")
        else:
            self.log(f"epoch {epoch + 1}: not validated (train.validate_from {train['validate_from']})")
        self.check_stop()

    def selection_value(self, rows: list[dict[str, str]], metric: str) -> float:
        refs = [clean_report(r["reference_raw"], self.source.cleaning_style) for r in rows]
        preds = [r["prediction"] for r in rows]
        context = ScoringContext(registry=self.registry, labeler=self.request.scoring.labeler,
                                 uncertain=self.request.scoring.uncertain)
        group = self._group_of(metric)
        if group == "nlg":
            from rrgbench.metrics.nlg import score_nlg

            result = score_nlg(preds, refs, metrics=(metric,))[metric]
        else:
            result = score(preds, refs, context, groups=[group], with_ci=False).results[metric]
        if result.value is None:
            raise ConfigError(f"train.select_metric '{metric}' is unavailable here: {result.unavailable}")
        return result.value if result.higher_is_better else -result.value

    def _group_of(self, metric: str) -> str:
        for entry in self.registry.entries("metric"):
            if metric in entry.extra.get("keys", ()):
                return entry.name
        keys = [k for e in self.registry.entries("metric") for k in e.extra.get("keys", ())]
        from rrgbench.errors import did_you_mean

        raise ConfigError(f"train.select_metric: unknown metric '{metric}'{did_you_mean(metric, keys)}")

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, name: str) -> None:
        """Write checkpoint ``name`` (collective: every rank's RNG state goes into it; rank 0 writes)."""
        ranks = distributed.all_gather_objects(rng_state()) if self.dist.enabled else None
        if name == "last":
            self._dirty = False
        if not self.dist.is_main:
            return
        assert self.run is not None
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict(), "rng": rng_state(),
                   "scaler": self.scaler.state_dict() if self.scaler is not None else None}
        if ranks is not None:
            payload["rng_ranks"] = ranks
        meta = {"name": name, "epoch": self.epoch, "batch": self.batch, "step": self.step,
                "best_value": None if self.best_epoch < 0 else self.best_value, "best_epoch": self.best_epoch,
                "best_step": self.best_step, "log_rows": self.log_rows, "world_size": self.dist.world_size,
                "init_report": self.init_report, "timings": self.timings,
                "config": self.config.to_dict(), "vocab": self.tokenizer.to_dict(),
                "n_views": self.source.n_views, "cleaning_style": self.source.cleaning_style}
        save_checkpoint(self.run.checkpoints / f"{name}.pt", payload, meta, keep_previous=name == "last")

    def load_best(self) -> None:
        def read() -> dict[str, Any] | None:
            assert self.run is not None
            path = self.run.checkpoints / "best.pt"
            return load_checkpoint(path)[0]["model"] if path.is_file() else None

        state = distributed.on_main(read)
        if state is not None:
            self.model.load_state_dict(state)

    # -- resuming -----------------------------------------------------------------------------
    def resume(self, run: RunDir) -> None:
        """Continue ``run`` from its newest complete checkpoint (from scratch, in it, when it has none)."""
        if self.dist.is_main:
            self.run = run
        found = distributed.on_main(lambda: self._read_latest(run))
        if found is None:
            self.log(f"resume {run.path}: no complete checkpoint yet; starting it over")
            if self.dist.is_main:
                truncate_log(run.path / "train_log.jsonl", 0)
                self.tokenizer.save(run.path / "vocab.json")
                run.set_status("running", pid=os.getpid(), host=socket.gethostname())
            return
        payload, meta, used = found
        self.restore(payload, meta)
        self.resumed_from = used
        if self.dist.is_main:
            truncate_log(run.path / "train_log.jsonl", self.log_rows)
            run.set_status("running", pid=os.getpid(), host=socket.gethostname(), resumed_from=used)
        self._log_row({"event": "resume", "checkpoint": used, "epoch": self.epoch, "batch": self.batch,
                       "step": self.step})
        self.log(f"resuming {run.path} from {Path(used).name} (epoch {self.epoch + 1}, batch {self.batch}, "
                 f"step {self.step})")

    def _read_latest(self, run: RunDir) -> tuple[dict[str, Any], dict[str, Any], str] | None:
        last = run.checkpoints / "last.pt"
        try:
            found = load_latest(last)
        except DataError as exc:
            if previous_path(last).exists():
                raise
            self.log(f"warning: {exc}; the first checkpoint was cut short")
            return None
        if found is None:
            return None
        payload, meta, used, problems = found
        for problem in problems:
            self.log(f"warning: {problem}; using {used.name}")
        self._repair_best(run, meta)
        return payload, meta, str(used)

    def _repair_best(self, run: RunDir, meta: dict[str, Any]) -> None:
        """``best`` is written right after ``last``: if a crash came between, ``last`` is the best state."""
        best, step = run.checkpoints / "best.pt", meta.get("best_step", -1)
        if step < 0:
            return
        try:
            recorded = read_meta(best).get("step") if best.is_file() else None
        except DataError:
            recorded = None
        if recorded == step:
            return
        if step == meta.get("step"):
            link_checkpoint(run.checkpoints / "last.pt", best, name="best")
        else:
            self.log(f"warning: {best} is not the checkpoint of the best epoch ({meta.get('best_epoch', -1) + 1}); "
                     "it will be replaced when validation improves")

    def restore(self, payload: dict[str, Any], meta: dict[str, Any]) -> None:
        """Load every state a checkpoint holds; the RNG last, after anything that draws from it."""
        missing = [key for key in ("epoch", "batch", "step", "best_step", "log_rows") if key not in meta]
        if missing or "optimizer" not in payload or "rng" not in payload:
            absent = ", ".join(missing) or "optimizer/rng"
            raise DataError(f"checkpoint {meta.get('name', 'last')} has no resume state ({absent} missing; written by "
                            "an older rrgbench?): start a new run without --resume")
        if Tokenizer.from_dict(meta["vocab"]) != self.tokenizer:
            raise DataError("the training reports changed since the run started (the vocabulary rebuilt from them "
                            "differs from the checkpoint's); resume with the same data")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler is not None and payload.get("scaler"):
            self.scaler.load_state_dict(payload["scaler"])
        self.epoch, self.batch, self.step = int(meta["epoch"]), int(meta["batch"]), int(meta["step"])
        self.best_epoch, self.best_step = int(meta["best_epoch"]), int(meta["best_step"])
        self.best_value = float("-inf") if meta["best_value"] is None else float(meta["best_value"])
        self.log_rows = int(meta["log_rows"])
        self.init_report = dict(meta.get("init_report") or {})
        self.timings = {key: list(values) for key, values in (meta.get("timings") or self.timings).items()}
        ranks = payload.get("rng_ranks")
        if ranks is not None and len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])
        else:
            set_rng_state(payload["rng"])
            if self.dist.enabled:
                self.log(f"note: the checkpoint was written by {meta.get('world_size', 1)} process(es), this job has "
                         f"{self.dist.world_size}; the data position is kept, dropout streams start anew")
                self._start_rank_streams()
        self._dirty = False

    # -- the end ------------------------------------------------------------------------------
    def finish(self) -> None:
        if self.best_epoch < 0:  # nothing was trained (epochs 0, or no trainable parameter)
            self.save("best")
        self.load_best()
        start = time.perf_counter()
        rows = self.decode_split("test")
        decode_seconds = time.perf_counter() - start
        if not self.dist.is_main:
            return
        assert self.run is not None
        scores = score_predictions(self.run, self.registry, rows, self.source.cleaning_style, self.request.scoring)
        record = results_record(
            self.run, self.config, scores.records,
            validation={"metric": self.config.sections["train"]["select_metric"], "best_epoch": self.best_epoch,
                        "best_value": None if self.best_epoch < 0 else self.best_value},
            protocol=self.protocol(scores.protocol),
            efficiency=self.efficiency(decode_seconds, len(rows)),
            env=environment(str(self.device)),
        )
        write_json(self.run.path / "results.json", record)
        self.run.set_status("finished")
        self.log(_summary_line(record))

    def protocol(self, extra: dict[str, Any]) -> dict[str, Any]:
        return protocol_record(self.config, self.source, self.tokenizer, self.request.scoring, self.init_report,
                               {**({"processes": self.dist.world_size} if self.dist.enabled else {}), **extra})

    def efficiency(self, decode_seconds: float, n_test: int) -> dict[str, Any]:
        """The ``efficiency`` section of results.json: see :mod:`rrgbench.efficiency` for every figure."""
        from rrgbench.efficiency import EfficiencyInputs, measure_efficiency

        return measure_efficiency(EfficiencyInputs(
            model=self.model, config=self.config, device=self.device, test_loader=self.loader("test", train=False),
            bos_id=self.tokenizer.bos_id, eos_id=self.tokenizer.eos_id,
            train_step_seconds=list(self.timings["train_step"]), train_samples=list(self.timings["samples"]),
            decode_seconds=decode_seconds, n_test=n_test, registry=self.registry,
            autocast=lambda: autocast(self.device, self.config), log=self.request.log))

    def _log_row(self, row: dict[str, Any]) -> None:
        """Append one row to train_log.jsonl (rank 0); the count goes into every checkpoint."""
        if self.run is None or not self.dist.is_main:
            return
        with open(self.run.path / "train_log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **row}, default=str) + "\n")
        self.log_rows += 1


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _summary_line(record: dict[str, Any]) -> str:
    parts = []
    for key, entry in record["metrics"].items():
        parts.append(f"{key} {entry['value']:.4f}" if entry["value"] is not None else f"{key} n/a")
    return "test: " + ", ".join(parts)


def run_training(registry: Registry, config: RunConfig, request: RunRequest) -> RunDir | None:
    """Train and evaluate one configuration; returns its run directory (results.json inside).

    With ``request.resume`` an unfinished run of this configuration continues (see
    :func:`rrgbench.resume.resolve_resume`); one that already finished is returned untouched. In a
    multi-process job only rank 0 returns the run directory; the other ranks return None.
    """
    info = distributed.setup(request.device)
    log = distributed.silence(info, request.log)
    target = distributed.on_main(lambda: _resume_target(config, request)) if request.resume else None
    if target is not None and target[1] == "finished":
        log(f"already finished: {target[0]} (nothing to resume)")
        return RunDir(Path(target[0])) if info.is_main else None
    trainer = Trainer(registry, config, request)
    if target is not None:
        trainer.resume(RunDir(Path(target[0])))
    return trainer.fit()


def _resume_target(config: RunConfig, request: RunRequest) -> tuple[str, str] | None:
    """(run directory, its status) to continue, or None with a note on why a new run starts."""
    assert request.resume is not None
    run = resolve_resume(request.out, config, request.resume)
    if run is not None:
        return str(run.path), run.status().get("status", "unknown")
    message = f"--resume: no unfinished run of this configuration in {request.out}; starting a new run"
    misses = near_misses(request.out, config)
    if misses:
        other, diff = misses[-1]
        message += f" (unfinished {other.path.name} differs: {'; '.join(diff[:3])})"
    request.log(message)
    return None


# -- evaluating a saved checkpoint ------------------------------------------------------------
EVAL_DATA_KEYS = ("eval_batch_size", "num_workers", "allow_missing")


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint alone (config, vocabulary and weights all from the checkpoint)."""

    model: ReportGenerator
    config: RunConfig
    tokenizer: Tokenizer
    meta: dict[str, Any]
    path: Path

    @property
    def n_views(self) -> int:
        return int(self.meta["n_views"])


def load_trained(registry: Registry, checkpoint: Path | str, device: torch.device) -> TrainedModel:
    """Verify and safely load ``checkpoint`` (checksum, weights-only), then rebuild its model in eval mode."""
    path = Path(checkpoint)
    payload, meta = load_checkpoint(path)
    missing = [key for key in ("config", "vocab", "n_views") if key not in meta]
    if missing or "model" not in payload:
        absent = ", ".join(missing) or "model weights"
        raise DataError(f"{path}: not an rrgbench training checkpoint (its metadata lacks {absent})")
    try:
        config = RunConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed config in its metadata ({type(exc).__name__}: {exc})") from None
    tokenizer = Tokenizer.from_dict(meta["vocab"])
    model = build_model(registry, config, context_for(config, tokenizer, int(meta["n_views"])))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise DataError(f"{path}: the weights do not fit the model its config describes ({first})") from None
    return TrainedModel(model.to(device).eval(), config, tokenizer, meta, path)


def evaluation_config(registry: Registry, trained: RunConfig, dataset: str | None,
                      overrides: dict[str, str]) -> RunConfig:
    """The checkpoint's config on ``dataset``, with evaluation-time overrides (dataset.*, decode.*, a few data.*)."""
    from rrgbench.errors import did_you_mean

    dataset = dataset or trained.dataset
    entry = registry.get("dataset", dataset)
    grouped: dict[str, dict[str, str]] = {"dataset": {}, "decode": {}, "data": {}}
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if section not in grouped or (section == "data" and name not in EVAL_DATA_KEYS):
            allowed = ["dataset.*", "decode.*", *(f"data.{k}" for k in EVAL_DATA_KEYS)]
            raise ConfigError(f"--set {key}: only {', '.join(allowed)} can change at evaluation; everything else is "
                              f"fixed by the checkpoint{did_you_mean(key, [a for a in allowed if '*' not in a])}")
        grouped[section][name] = value
    sections = copy.deepcopy(trained.sections)
    base = sections["dataset"] if dataset == trained.dataset else {}
    sections["dataset"] = as_dict(validate(entry.options, {**base, **grouped["dataset"]}, f"dataset '{dataset}'"))
    sections["decode"] = as_dict(validate(DecodeOptions, {**sections["decode"], **grouped["decode"]}, "decode"))
    sections["data"] = as_dict(validate(DataOptions, {**sections["data"], **grouped["data"]}, "data"))
    return RunConfig(model=trained.model, dataset=dataset, profile=trained.profile, seed=trained.seed,
                     components=dict(trained.components), sections=sections, recipe_kind=trained.recipe_kind,
                     user_overrides={**trained.user_overrides, **overrides})


def evaluate_checkpoint(registry: Registry, checkpoint: Path | str, request: RunRequest, dataset: str | None = None,
                        overrides: dict[str, str] | None = None) -> RunDir:
    """Decode and score a dataset's test split with a saved checkpoint; write a run record in ``request.out``.

    Nothing else happens before the checkpoint is verified and loaded (weights-only): a pickle that
    carries code is refused. The record has the training records' schema plus ``evaluated_from`` (the
    checkpoint's path); ``protocol.evaluation`` adds its SHA-256, name, step and training dataset.
    Evaluation runs in one process (the test split of a benchmark decodes in minutes).
    """
    if distributed.env_info().enabled:
        raise ConfigError("rrgbench evaluate runs in a single process; start it without torchrun")
    device = resolve_device(request.device)
    configure_determinism(device)
    trained = load_trained(registry, checkpoint, device)
    config = evaluation_config(registry, trained.config, dataset, overrides or {})
    source = load_source(registry, config, request.data_dir)
    if source.n_views != trained.n_views:
        raise DataError(f"dataset '{config.dataset}' has {source.n_views} view(s) per study but the checkpoint's "
                        f"model takes {trained.n_views}")
    run = create_run(request.out, config)
    try:
        trained.tokenizer.save(run.path / "vocab.json")
        data = config.sections["data"]
        studies = StudyDataset(source.splits["test"], source.image_root, trained.tokenizer, data, train=False)
        loader = make_loader(studies, data["eval_batch_size"], shuffle=False, num_workers=data["num_workers"],
                             seed=config.seed)
        start = time.perf_counter()
        rows = decode_loader(trained.model, loader, config, trained.tokenizer, device, request.progress)
        seconds = time.perf_counter() - start
        scores = score_predictions(run, registry, rows, source.cleaning_style, request.scoring)
        origin = str(trained.path.resolve())
        evaluation = {"checkpoint": origin, "sha256": trained.meta.get("sha256"), "name": trained.meta.get("name"),
                      "trained_on": trained.config.dataset, "step": trained.meta.get("step")}
        record = results_record(
            run, config, scores.records,
            validation={"metric": config.sections["train"]["select_metric"],
                        "best_epoch": trained.meta.get("best_epoch", -1), "best_value": trained.meta.get("best_value")},
            protocol=protocol_record(config, source, trained.tokenizer, request.scoring,
                                     dict(trained.meta.get("init_report") or {}),
                                     {"evaluation": evaluation, **scores.protocol}),
            efficiency={"parameters": {"total": _count(trained.model),
                                       **{k: _count(getattr(trained.model, k))
                                          for k in ("encoder", "memory", "alignment", "decoder")}},
                        "train_step_seconds_mean": None, "train_samples_per_second": None,
                        "test_decode_seconds": seconds, "test_studies": len(rows)},
            env=environment(str(device)),
            evaluated_from=origin,
        )
        write_json(run.path / "results.json", record)
        run.set_status("finished", evaluated_from=origin)
        request.log(_summary_line(record))
    except BaseException as exc:
        run.set_status("failed", error=f"{type(exc).__name__}: {exc}"[:500])
        raise
    return run


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
    transform = image_transform(config.sections["data"], train=False)
    views = torch.stack([transform(load_image(Path(image))) for image in images])[None].to(torch_device)
    dec = config.sections["decode"]
    with autocast(torch_device, config):
        ids = generate(trained.model, views, dec["method"], dec["beam_size"],
                       dec["max_len"] or config.sections["data"]["max_len"], trained.tokenizer.bos_id,
                       trained.tokenizer.eos_id)
    return trained.tokenizer.decode(ids[0])
