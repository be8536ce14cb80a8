"""Training and evaluation of one run: data -> vocabulary -> model -> epochs -> selection -> test -> record.

Protocol guarantees: the vocabulary is built on train reports only and saved with the run and every
checkpoint; the checkpoint is selected on the validation split only (``train.select_metric``); the
test split is decoded exactly once, at the end, with the selected weights; references are cleaned
but never truncated for scoring.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrgbench.checkpoint import load_checkpoint, rng_state, save_checkpoint
from rrgbench.components import BuildContext
from rrgbench.config import RunConfig
from rrgbench.data.cleaning import clean_report
from rrgbench.data.loader import Batch, StudyDataset, make_loader
from rrgbench.data.source import DatasetSource
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.decode import generate
from rrgbench.errors import ConfigError, DataError
from rrgbench.io import write_json, write_jsonl
from rrgbench.model import ReportGenerator, build_model
from rrgbench.options import validate
from rrgbench.plugins import Registry
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


def load_source(registry: Registry, config: RunConfig, data_dir: str | None) -> DatasetSource:
    entry = registry.get("dataset", config.dataset)
    options = validate(entry.options, config.sections["dataset"], f"dataset '{config.dataset}'")
    source = entry.load()(options, data_dir, allow_missing=config.sections["data"]["allow_missing"])
    for split in ("train", "val", "test"):
        if not source.splits.get(split):
            raise DataError(f"dataset '{config.dataset}': split '{split}' is empty; every split needs studies")
    return source


def build_context(config: RunConfig, tokenizer: Tokenizer, source: DatasetSource) -> BuildContext:
    data = config.sections["data"]
    return BuildContext(d_model=config.sections["model"]["d_model"], vocab_size=len(tokenizer),
                        pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id,
                        max_len=data["max_len"], n_views=source.n_views, image_size=data["image_size"])


def make_optimizer(model: ReportGenerator, train: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam with two learning rates: the visual extractor's and everything else's."""
    visual = [p for p in model.encoder.parameters() if p.requires_grad]
    visual_ids = {id(p) for p in visual}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in visual_ids]
    groups = [g for g in ({"params": visual, "lr": train["lr_visual"]}, {"params": rest, "lr": train["lr"]})
              if g["params"]]
    if not groups:
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    return torch.optim.Adam(groups, weight_decay=train["weight_decay"], amsgrad=train["amsgrad"],
                            betas=(train["beta1"], train["beta2"]))


def decode_loader(model: ReportGenerator, loader: Any, config: RunConfig, tokenizer: Tokenizer,
                  device: torch.device, progress: bool = False, method: str | None = None) -> list[dict[str, str]]:
    """Decode every study of a loader; rows keep the dataset's ids and the raw reference."""
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
    return rows


def autocast(device: torch.device, config: RunConfig) -> Any:
    enabled = device.type == "cuda" and config.sections["train"]["amp"]
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


class Trainer:
    """One run's training loop, validation-based selection, and final test evaluation."""

    def __init__(self, registry: Registry, config: RunConfig, request: RunRequest) -> None:
        self.registry, self.config, self.request = registry, config, request
        self.device = resolve_device(request.device)
        seed_everything(config.seed)
        self.source = load_source(registry, config, request.data_dir)
        data = config.sections["data"]
        train_reports = [s.report for s in self.source.splits["train"]]
        self.tokenizer = Tokenizer.build(train_reports, data["threshold"], self.source.cleaning_style)
        self.model = build_model(registry, config, build_context(config, self.tokenizer, self.source)).to(self.device)
        self.optimizer = make_optimizer(self.model, config.sections["train"])
        tr = config.sections["train"]
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=tr["step_size"], gamma=tr["gamma"])
        self.run: RunDir | None = None
        self.epoch, self.step, self.best_value, self.best_epoch = 0, 0, float("-inf"), -1
        self.timings: dict[str, list[float]] = {"train_step": [], "samples": []}
        self.init_report: dict[str, Any] = {}

    # -- data ---------------------------------------------------------------------------------
    def loader(self, split: str, train: bool) -> Any:
        data = self.config.sections["data"]
        dataset = StudyDataset(self.source.splits[split], self.source.image_root, self.tokenizer, data, train)
        size = data["batch_size"] if train else data["eval_batch_size"]
        return make_loader(dataset, size, shuffle=train, num_workers=data["num_workers"],
                           seed=self.config.seed + self.epoch)

    # -- the run ------------------------------------------------------------------------------
    def start(self) -> RunDir:
        self.run = create_run(self.request.out, self.config)
        self.tokenizer.save(self.run.path / "vocab.json")
        return self.run

    def fit(self) -> RunDir:
        run = self.run or self.start()
        log = self.request.log
        try:
            log(f"run {run.path}  ({self.config.model} on {self.config.dataset}, profile {self.config.profile}, "
                f"{_count(self.model):,} parameters, vocabulary {len(self.tokenizer)}, device {self.device})")
            self.initialize_components()
            for epoch in range(self.epoch, self.config.sections["train"]["epochs"]):
                self.epoch = epoch
                self.train_epoch()
                self.scheduler.step()
                self.validate_and_checkpoint()
            self.epoch = self.config.sections["train"]["epochs"]
            self.finish()
        except BaseException as exc:
            run.set_status("failed", error=f"{type(exc).__name__}: {exc}"[:500])
            raise
        return run

    def initialize_components(self) -> None:
        wanting = self.model.components_wanting_initialization()
        if not wanting:
            return
        start = time.perf_counter()
        summary = self.model.summarize(b.to(self.device) for b in self.loader("train", train=False))
        for component in wanting:
            self.init_report[type(component).__name__] = component.initialize(summary)
        self.init_report["seconds_total"] = time.perf_counter() - start
        self._log_row({"event": "initialize", **self.init_report})

    def train_epoch(self) -> None:
        from tqdm import tqdm

        self.model.train()
        tr = self.config.sections["train"]
        loader = self.loader("train", train=True)
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{tr['epochs']}", disable=not self.request.progress,
                   leave=False)
        for i, batch in enumerate(bar):
            if tr["max_steps_per_epoch"] and i >= tr["max_steps_per_epoch"]:
                break
            terms = self.train_step(batch.to(self.device))
            bar.set_postfix(loss=f"{terms['loss']:.3f}", samples_s=f"{self._throughput():.1f}")
            if self.step % 10 == 0:
                self._log_row({"event": "step", "epoch": self.epoch, "step": self.step, **terms})

    def train_step(self, batch: Batch) -> dict[str, float]:
        tr = self.config.sections["train"]
        start = time.perf_counter()
        with autocast(self.device, self.config):
            out = self.model(batch.images, batch.target_ids)
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if tr["clip_value"]:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), tr["clip_value"])
        if tr["clip_norm"]:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tr["clip_norm"])
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.timings["train_step"].append(time.perf_counter() - start)
        self.timings["samples"].append(len(batch.ids))
        self.step += 1
        return {"loss": float(out.loss.detach()), **{k: float(v.detach()) for k, v in out.terms.items()}}

    def _throughput(self) -> float:
        seconds = sum(self.timings["train_step"][-20:])
        return sum(self.timings["samples"][-20:]) / seconds if seconds else 0.0

    def validate_and_checkpoint(self) -> None:
        metric = self.config.sections["train"]["select_metric"]
        rows = decode_loader(self.model, self.loader("val", train=False), self.config, self.tokenizer, self.device,
                             self.request.progress)
        value = self.selection_value(rows, metric)
        improved = value > self.best_value
        if improved:
            self.best_value, self.best_epoch = value, self.epoch
            self.save("best")
        self.save("last")
        self._log_row({"event": "validate", "epoch": self.epoch, "metric": metric, "value": value,
                       "best_epoch": self.best_epoch})
        self.request.log(f"epoch {self.epoch + 1}: val {metric} {value:.4f}{'  (best)' if improved else ''}")

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
        assert self.run is not None
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict(), "rng": rng_state()}
        meta = {"name": name, "epoch": self.epoch, "step": self.step, "best_value": self.best_value,
                "best_epoch": self.best_epoch, "config": self.config.to_dict(), "vocab": self.tokenizer.to_dict(),
                "n_views": self.source.n_views, "cleaning_style": self.source.cleaning_style}
        save_checkpoint(self.run.checkpoints / f"{name}.pt", payload, meta)

    def load_best(self) -> None:
        assert self.run is not None
        path = self.run.checkpoints / "best.pt"
        if path.is_file():
            payload, _ = load_checkpoint(path)
            self.model.load_state_dict(payload["model"])

    # -- the end ------------------------------------------------------------------------------
    def finish(self) -> None:
        assert self.run is not None
        if self.config.sections["train"]["epochs"] == 0:
            self.save("best")
            self.best_epoch = -1
        self.load_best()
        start = time.perf_counter()
        rows = decode_loader(self.model, self.loader("test", train=False), self.config, self.tokenizer, self.device,
                             self.request.progress)
        decode_seconds = time.perf_counter() - start
        for row in rows:
            row["reference"] = clean_report(row.pop("reference_raw"), self.source.cleaning_style)
        write_jsonl(self.run.path / "predictions.jsonl", rows)
        context = self.request.scoring
        context.registry, context.output_dir = self.registry, self.run.path
        scores = score([r["prediction"] for r in rows], [r["reference"] for r in rows], context)
        write_jsonl(self.run.path / "scores.jsonl", scores.per_study([r["id"] for r in rows]))
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
        self.request.log(_summary_line(record))

    def protocol(self, extra: dict[str, Any]) -> dict[str, Any]:
        data, dec = self.config.sections["data"], self.config.sections["decode"]
        return {
            "splits": self.source.sizes(),
            "cleaning": self.source.cleaning_style,
            "references": "cleaned with the dataset's R2Gen cleaning, never truncated",
            "vocabulary": {"size": len(self.tokenizer), "threshold": data["threshold"], "built_on": "train"},
            "max_len": data["max_len"],
            "decode": {"method": dec["method"], "beam_size": dec["beam_size"],
                       "max_len": dec["max_len"] or data["max_len"]},
            "selection": {"split": "val", "metric": self.config.sections["train"]["select_metric"]},
            "bootstrap": {"resamples": self.request.scoring.n_resamples, "seed": self.request.scoring.seed,
                          "level": 0.95, "unit": "study"},
            "profile": self.config.profile,
            "initialization": self.init_report,
            **self.source.notes,
            **extra,
        }

    def efficiency(self, decode_seconds: float, n_test: int) -> dict[str, Any]:
        steps = self.timings["train_step"][1:] or self.timings["train_step"]
        samples = self.timings["samples"][1:] or self.timings["samples"]
        return {
            "parameters": {"total": _count(self.model),
                           **{k: _count(getattr(self.model, k)) for k in ("encoder", "memory", "alignment", "decoder")}},
            "train_step_seconds_mean": float(np.mean(steps)) if steps else None,
            "train_samples_per_second": float(sum(samples) / sum(steps)) if steps else None,
            "test_decode_seconds": decode_seconds,
            "test_studies": n_test,
        }

    def _log_row(self, row: dict[str, Any]) -> None:
        assert self.run is not None
        with open(self.run.path / "train_log.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": time.time(), **row}) + "\n")


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _summary_line(record: dict[str, Any]) -> str:
    parts = []
    for key, entry in record["metrics"].items():
        parts.append(f"{key} {entry['value']:.4f}" if entry["value"] is not None else f"{key} n/a")
    return "test: " + ", ".join(parts)


def run_training(registry: Registry, config: RunConfig, request: RunRequest) -> RunDir:
    """Train and evaluate one configuration; returns its run directory (results.json inside)."""
    trainer = Trainer(registry, config, request)
    return trainer.fit()
