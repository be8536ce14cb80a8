"""The training loop of one run: data -> vocabulary -> model -> epochs -> selection -> test -> record.

Protocol guarantees: the vocabulary is built on train reports only and saved with the run and every
checkpoint; the checkpoint is selected on the validation split only (``train.select_metric``); the
test split is decoded exactly once, at the end, with the selected weights; references are cleaned
but never truncated for scoring.

Exact resume (:mod:`rrgbench.run.resume`): ``checkpoints/last`` is written at the end of every epoch and
every ``train.checkpoint_every`` steps with the model, optimizer, scheduler, every RNG state (per rank)
and the :class:`~rrgbench.run.state.TrainState`; SIGINT/SIGTERM write it at the next step before the run
stops (status ``interrupted``). A resumed run skips exactly the batches already trained and ends with
the same predictions and metrics as an uninterrupted one (CPU, fixed seed). CPU runs use deterministic
kernels.

Multi-process training (:mod:`rrgbench.run.distributed`): under ``torchrun`` the model trains with
DistributedDataParallel on a global batch of ``data.batch_size`` split over the ranks; the token-level
generation loss is re-weighted by each rank's share of target tokens so that the averaged gradient
equals the single-process one; validation and test decoding are sharded and gathered in study order;
only rank 0 writes (:class:`~rrgbench.run.writer.RunWriter`). Decoding always calls ``prepare``/``step``
on the unwrapped model.

What a person watches (:mod:`rrgbench.logs`): every stage is a phase line through ``request.log``
(loading, initialisation, validating, decoding test, scoring, efficiency), every loop a progress bar on a
terminal or plain progress lines otherwise; with ``request.report_to`` every training step's and every
validation's scalars also go to TensorBoard or W&B (:mod:`rrgbench.run.tracking`). The selected weights
are exported as ``model.safetensors`` (:mod:`rrgbench.run.export`) before the test split is scored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rrgbench.config import RunConfig
from rrgbench.data.loader import Batch, StudyDataset, loader_workers, make_loader
from rrgbench.data.tokenizer import Tokenizer
from rrgbench.errors import ConfigError, DataError
from rrgbench.extension.plugins import Registry
from rrgbench.logs import Progress, duration, phase
from rrgbench.model import build_model
from rrgbench.record import Validation, ValidationPoint
from rrgbench.run import distributed
from rrgbench.run.checkpoint import load_checkpoint, load_latest, previous_path, read_meta, rng_state, set_rng_state
from rrgbench.run.environment import environment, plugin_code
from rrgbench.run.evaluate import decode_cost, decode_loader
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
from rrgbench.run.resume import RunInterrupted, SeededSamples, StopSignals, near_misses, resolve_resume, truncate_log
from rrgbench.run.selection import check_select_metric, validation_method, validation_subset, validation_values
from rrgbench.run.setup import (
    autocast,
    configure_determinism,
    context_for,
    count_parameters,
    load_source,
    make_optimizer,
    make_scheduler,
    resolve_device,
    seed_everything,
)
from rrgbench.run.state import TrainState
from rrgbench.run.tracking import Tracker, check_tracker, open_tracker
from rrgbench.run.writer import RunWriter

__all__ = ["RunRequest", "Trainer", "run_training"]


class Trainer:
    """One run's training loop, validation-based selection, and final test evaluation.

    The position lives in :attr:`state` (``epoch`` in progress, ``batch`` of its batches trained, ``step``
    over the run); every checkpoint records it, so a resumed run continues at exactly that batch of the
    same epoch order.
    """

    def __init__(self, registry: Registry, config: RunConfig, request: RunRequest) -> None:
        self.registry, self.config, self.request = registry, config, request
        check_select_metric(registry, config)
        self.dist = distributed.setup(request.device)
        self.device = resolve_device(distributed.device_for(request.device, self.dist))
        self.log = distributed.silence(self.dist, request.log)
        self.progress = request.progress and self.dist.is_main
        check_tracker(request.report_to)
        self.tracker = Tracker()
        self.scoring = scoring_context(config, registry, request.files)
        if self.dist.is_main:
            check_scoring(registry, [config], request.files)  # a missing --chexbert file fails before training
        configure_determinism(self.device)
        with phase(f"loading {config.dataset}", self.log):
            self.source = distributed.main_first(lambda: load_source(registry, config, request.data_dir))
        train_reports = [s.report for s in self.source.splits["train"]]
        self.tokenizer = Tokenizer.build(train_reports, config.data.threshold, self.source.cleaning_style)
        seed_everything(config.seed)  # after the data: a dataset plugin drawing from global RNGs cannot shift it
        context = context_for(config, self.tokenizer, self.source.n_views)
        self.model = build_model(registry, config, context).to(self.device)
        self.image_stats = self.model.encoder.image_stats()
        self.optimizer = make_optimizer(self.model, config.train)
        self._encoder_ids = {id(p) for p in self.model.encoder.parameters()}  # names the learning rates it logs
        self.scheduler = make_scheduler(self.optimizer, config.train)
        self.train_module: torch.nn.Module = self.model  # the DDP wrapper in a multi-process job
        self.local_batch_size = self._local_batch_size()
        # data.cache_images: decoded images kept for the whole run (worker processes could not share it)
        caching = config.data.cache_images and not loader_workers(config.data)
        self.decoded_images: dict[str, Any] | None = {} if caching else None
        self.writer = RunWriter(None)
        self.state = TrainState()
        self.state.init_report["encoder"] = self.model.encoder.initialization()
        self.resumed_from: str | None = None
        self.stop = StopSignals()
        self._dirty = False  # trained since ``last`` was written

    def _local_batch_size(self) -> int:
        size, world = self.config.data.batch_size, self.dist.world_size
        if size % world:
            raise ConfigError(f"data.batch_size {size} is the global batch and must be divisible by the number of "
                              f"processes ({world})")
        return size // world

    # -- data ---------------------------------------------------------------------------------
    def loader(self, split: str, train: bool, indices: Sequence[int] | None = None) -> Any:
        """A loader over ``split`` (in ``indices`` order when given); training samples are seeded per sample."""
        data = self.config.data
        dataset: Any = StudyDataset(self.source.splits[split], self.source.image_root, self.tokenizer, data, train,
                                    decoded=self.decoded_images, stats=self.image_stats)
        if train:
            dataset = SeededSamples(dataset, self.config.seed, self.state.epoch)
        size = self.local_batch_size if train else data.eval_batch_size
        return make_loader(dataset, size, shuffle=train and indices is None, num_workers=loader_workers(data),
                           seed=self.config.seed + self.state.epoch,
                           sampler=None if indices is None else list(indices))

    def epoch_plan(self) -> tuple[list[int], int]:
        """This rank's study order for the current epoch (a function of seed and epoch) and its batch count."""
        indices = distributed.shard_indices(len(self.source.splits["train"]), self.dist, shuffle=True,
                                            seed=self.config.seed, epoch=self.state.epoch)
        n_batches = math.ceil(len(indices) / self.local_batch_size)
        cap = self.config.train.max_steps_per_epoch
        return indices, min(n_batches, cap) if cap else n_batches

    def decode_split(self, split: str, subset: Sequence[int] | None = None,
                     method: str | None = None) -> list[dict[str, str]]:
        """Decode a split, or its studies ``subset`` (sharded over ranks), rows in study order on every rank."""
        studies = range(len(self.source.splits[split])) if subset is None else subset
        shard = distributed.shard_indices(len(studies), self.dist, shuffle=False, seed=self.config.seed, epoch=0)
        indices = [studies[i] for i in shard]
        rows = decode_loader(self.model, self.loader(split, train=False, indices=indices), self.config, self.tokenizer,
                             self.device, self.progress, method=method, on_batch=self.check_stop, say=self.log,
                             desc=f"decode {split}")
        return distributed.gather_in_order(rows, indices)

    # -- the run ------------------------------------------------------------------------------
    def start(self) -> RunDir:
        run = create_run(self.request.out, self.config)
        self.writer = RunWriter(run)
        self.writer.vocabulary(self.tokenizer)
        return run

    def fit(self) -> RunDir | None:
        """Train (or continue), select on validation, decode and score the test split; rank 0 gets the run."""
        if not self.writer.enabled and self.dist.is_main:
            self.start()
        with self.stop:
            try:
                self.tracker = open_tracker(self.request.report_to, self.writer.run.path if self.writer.run else None,
                                            self.config.to_dict(), self.state.step if self.resumed_from else None)
                self._fit()
            except (RunInterrupted, KeyboardInterrupt) as exc:
                signum = exc.signum if isinstance(exc, RunInterrupted) else int(signal.SIGINT)
                self.writer.status("interrupted", signal=signal.Signals(signum).name, step=self.state.step,
                                   error=str(exc)[:500] or "interrupted")
                raise
            except BaseException as exc:
                self.writer.failed(exc, log_row=True)
                raise
            finally:
                self.tracker.close()
                if self.writer.run is not None:
                    self.writer.run.unlock()
        return self.writer.run

    def _fit(self) -> None:
        where = self.writer.run.path if self.writer.run else "(rank > 0)"
        self.log(f"run {where}  ({self.config.model} on {self.config.dataset}, profile {self.config.profile}, "
                 f"{count_parameters(self.model):,} parameters, vocabulary {len(self.tokenizer)}, device "
                 f"{self.device}" + (f", {self.dist.world_size} processes" if self.dist.enabled else "") + ")")
        if self.resumed_from is None:
            self.initialize_components()
        self.train_module = distributed.wrap(self.model, self.dist, self.device)
        epochs = self.config.train.epochs
        if epochs and not any(p.requires_grad for p in self.model.parameters()):
            self.log(f"{self.config.model} has no trainable parameter: skipping {epochs} training epoch(s)")
            epochs = 0
        began = time.perf_counter()
        first = self.state.epoch
        while self.state.epoch < epochs:
            self.train_epoch()
            self.validate_and_checkpoint()
            done = self.state.epoch - first
            if self.state.epoch < epochs:
                left = (time.perf_counter() - began) / done * (epochs - self.state.epoch)
                self.log(f"epoch {self.state.epoch}/{epochs} finished; training and validation left: ~{duration(left)}")
        self.finish()

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
            names = ", ".join(type(component).__name__ for component in wanting)
            with phase(f"data-driven initialisation ({names})", self.log):
                summary = self.model.summarize(b.to(self.device) for b in self.loader("train", train=False))
                for component in wanting:
                    self.state.init_report[type(component).__name__] = component.initialize(summary)
            self.state.init_report["seconds_total"] = time.perf_counter() - start
            distributed.broadcast_module(self.model)
            self._log_row({"event": "initialize", **self.state.init_report})
        self._start_rank_streams()
        if wanting:
            self.save("last")  # a resume need not initialise again

    def train_epoch(self) -> None:
        """Train the rest of the current epoch, from batch ``state.batch`` of its order."""
        train, state = self.config.train, self.state
        indices, n_batches = self.epoch_plan()
        remaining = indices[state.batch * self.local_batch_size: n_batches * self.local_batch_size]
        self.model.train()
        loader = self.loader("train", train=True, indices=remaining)
        progress = Progress(f"epoch {state.epoch + 1}/{train.epochs}", n_batches, unit="steps", bar=self.progress,
                            say=self.log)
        progress.done = state.batch
        began = time.perf_counter()
        for batch in loader:
            terms = self.train_step(batch.to(self.device))
            state.batch += 1
            throughput = self._throughput()
            progress.update(fields={"loss": terms["loss"], "samples/s": round(throughput, 1)})
            if self.tracker.enabled:
                self.tracker.scalars({**{f"train/{k}": v for k, v in terms.items()}, **self._learning_rates(),
                                      "train/samples_per_second": throughput}, state.step)
            if state.step % 10 == 0:
                self._log_row({"event": "step", "epoch": state.epoch, "step": state.step, **terms})
            if train.checkpoint_every and state.step % train.checkpoint_every == 0:
                state.train_seconds += time.perf_counter() - began
                began = time.perf_counter()
                self.save("last")
            self.check_stop()
        progress.close()
        state.train_seconds += time.perf_counter() - began

    def _learning_rates(self) -> dict[str, float]:
        """``train/lr_visual`` (the encoder's group, when it trains) and ``train/lr`` (everything else)."""
        encoder = self._encoder_ids
        return {f"train/{'lr_visual' if id(group['params'][0]) in encoder else 'lr'}": float(group["lr"])
                for group in self.optimizer.param_groups if group["params"]}

    def train_step(self, batch: Batch) -> dict[str, float]:
        train = self.config.train
        start = time.perf_counter()
        with autocast(self.device, self.config):
            out = self.train_module(batch.images, batch.target_ids)
        loss = self._rank_loss(out.loss, out.terms, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.clip_value:
            torch.nn.utils.clip_grad_value_(self.model.parameters(), train.clip_value)
        if train.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), train.clip_norm, foreach=True)
        self.optimizer.step()
        self._dirty = True
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.state.step_seconds.append(time.perf_counter() - start)
        self.state.step_samples.append(len(batch.ids))
        self.state.step += 1
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
        seconds = sum(self.state.step_seconds[-20:])
        return sum(self.state.step_samples[-20:]) / seconds if seconds else 0.0

    def check_stop(self) -> None:
        """A safe point: after SIGINT/SIGTERM (on any rank) write the position to ``last`` and stop."""
        signum = int(distributed.all_reduce(float(self.stop.requested or 0), op="max"))
        if not signum:
            return
        state = self.state
        where = f"epoch {state.epoch + 1}, batch {state.batch}, step {state.step}"
        if self._dirty:
            self.log(f"{signal.Signals(signum).name}: writing a checkpoint at {where}, then stopping")
            self.save("last")
        target = f" --resume {self.writer.run.path}" if self.writer.run else " --resume"
        raise RunInterrupted(f"run interrupted by {signal.Signals(signum).name} at {where}; the checkpoint is "
                             f"saved, continue with: rrgbench run ...{target}", signum)

    def validate_and_checkpoint(self) -> None:
        """End of an epoch: validate, step the scheduler, write ``last`` (and ``best`` when it improved)."""
        train, state = self.config.train, self.state
        metric, epoch = train.select_metric, state.epoch
        validated = epoch + 1 >= train.validate_from or epoch + 1 == train.epochs
        improved, value = False, None
        if validated:
            with phase(f"validating (epoch {epoch + 1})", self.log):
                subset = validation_subset(len(self.source.splits["val"]), self.config)
                rows = self.decode_split("val", subset, validation_method(self.config))
                value, values = distributed.on_main(lambda: validation_values(rows, self.config,
                                                                              self.source.cleaning_style, self.scoring))
            self.tracker.scalars({f"val/{k}": v for k, v in values.items()}, state.step)
            improved = state.improved(value)
            if improved:
                state.select(value)
            state.history.append({"epoch": epoch, "step": state.step, "seconds": state.train_seconds,
                                  "value": values[metric], "values": values})
            self._log_row({"event": "validate", "epoch": epoch, "step": state.step, "metric": metric,
                           "value": values[metric], "values": values, "best_epoch": state.best_epoch})
        self.scheduler.step()
        state.next_epoch()
        self.save("last")
        if improved:
            self.writer.mark_best()
        if value is not None:
            self.log(f"epoch {epoch + 1}: val {metric} {values[metric]:.4f}{'  (best)' if improved else ''}")
        else:
            self.log(f"epoch {epoch + 1}: not validated (train.validate_from {train.validate_from})")
        self.check_stop()

    # -- checkpoints --------------------------------------------------------------------------
    def save(self, name: str) -> None:
        """Write checkpoint ``name`` (collective: every rank's RNG state goes into it; rank 0 writes)."""
        ranks = distributed.all_gather_objects(rng_state()) if self.dist.enabled else None
        if name == "last":
            self._dirty = False
        if not self.writer.enabled:
            return
        payload = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                   "scheduler": self.scheduler.state_dict(), "rng": rng_state()}
        if ranks is not None:
            payload["rng_ranks"] = ranks
        meta = {"name": name, **self.state.to_meta(), "world_size": self.dist.world_size,
                "config": self.config.to_dict(), "vocab": self.tokenizer.to_dict(),
                "n_views": self.source.n_views, "cleaning_style": self.source.cleaning_style,
                "image_stats": dataclasses.asdict(self.image_stats)}
        self.writer.checkpoint(name, payload, meta)

    def load_best(self) -> None:
        def read() -> dict[str, Any] | None:
            path = self.writer.path / "checkpoints" / "best.pt"
            return load_checkpoint(path)[0]["model"] if path.is_file() else None

        state = distributed.on_main(read)
        if state is not None:
            self.model.load_state_dict(state)

    # -- resuming -----------------------------------------------------------------------------
    def resume(self, run: RunDir) -> None:
        """Continue ``run`` from its newest complete checkpoint (from scratch, in it, when it has none)."""
        if self.dist.is_main:
            run.lock()
            self.writer = RunWriter(run)
        found = distributed.on_main(lambda: self._read_latest(run))
        if found is None:
            self.log(f"resume {run.path}: no complete checkpoint yet; starting it over")
            if self.dist.is_main:
                truncate_log(run.path / "train_log.jsonl", 0)
                self.writer.vocabulary(self.tokenizer)
                self.writer.status("running", pid=os.getpid(), host=socket.gethostname())
            return
        payload, meta, used = found
        self.restore(payload, meta)
        self.resumed_from = used
        if self.dist.is_main:
            truncate_log(run.path / "train_log.jsonl", self.state.log_rows)
            self.writer.status("running", pid=os.getpid(), host=socket.gethostname(), resumed_from=used)
        state = self.state
        self._log_row({"event": "resume", "checkpoint": used, "epoch": state.epoch, "batch": state.batch,
                       "step": state.step})
        self.log(f"resuming {run.path} from {Path(used).name} (epoch {state.epoch + 1}, batch {state.batch}, "
                 f"step {state.step})")

    def _read_latest(self, run: RunDir) -> tuple[dict[str, Any], dict[str, Any], str] | None:
        last = run.checkpoints / "last.pt"
        try:
            found = load_latest(last)
        except DataError as exc:
            if previous_path(last).exists() or last.with_suffix(".json").exists():
                raise DataError(f"{exc}; the run cannot continue: start a new run without --resume (or restore "
                                "the checkpoint files)") from None
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
            RunWriter(run).mark_best()
        else:
            self.log(f"warning: {best} is not the checkpoint of the best epoch ({meta.get('best_epoch', -1) + 1}); "
                     "it will be replaced when validation improves")

    def restore(self, payload: dict[str, Any], meta: dict[str, Any]) -> None:
        """Load every state a checkpoint holds; the RNG last, after anything that draws from it."""
        state = TrainState.from_meta(meta)
        if "optimizer" not in payload or "rng" not in payload:
            raise DataError(f"checkpoint {meta.get('name', 'last')} has no resume state (optimizer/rng missing; "
                            "written by an older rrgbench?): start a new run without --resume")
        if Tokenizer.from_dict(meta["vocab"]) != self.tokenizer:
            raise DataError("the training reports changed since the run started (the vocabulary rebuilt from them "
                            "differs from the checkpoint's); resume with the same data")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = state
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
        if self.state.best_epoch < 0:  # nothing was trained (epochs 0, or no trainable parameter)
            self.save("best")
        self.load_best()
        start = time.perf_counter()
        with phase("decoding test", self.log):
            rows = self.decode_split("test")
        decode_seconds = time.perf_counter() - start
        if not self.dist.is_main:
            return
        self.writer.export_model(self.model, self.config, self.tokenizer, self._export_meta())
        with phase(f"scoring {len(rows)} test studies", self.log):
            scores = score_rows(rows, self.source.cleaning_style, self.scoring)
        self.writer.outputs(rows, scores.per_study([r["id"] for r in rows]), scores.tables)
        self.tracker.scalars({f"test/{k}": v.value for k, v in scores.values.items()}, self.state.step)
        record = run_record(
            "training", self.writer.path.name, self.config, self.registry, rows, scores,
            validation=self.validation(),
            protocol=protocol_for(self.config, self.source, self.tokenizer, self.scoring, scores,
                                  self.state.init_report,
                                  processes=self.dist.world_size if self.dist.enabled else None),
            efficiency=self.efficiency(decode_seconds, len(rows)),
            environment=environment(str(self.device), plugin_code(self.registry, self.config)))
        self.writer.record(record)
        self.writer.status("finished")
        self.log(summary_line(record))

    def validation(self) -> Validation:
        state = self.state
        best = state.best_value
        if best is not None and not self._higher_is_better():
            best = -best
        return Validation(metric=self.config.train.select_metric, best_epoch=state.best_epoch,
                          best_value=None if state.best_epoch < 0 else best,
                          history=[ValidationPoint(**point) for point in state.history])

    def _higher_is_better(self) -> bool:
        from rrgbench.scoring.engine import all_keys

        found = all_keys(self.registry).get(self.config.train.select_metric)
        return found is None or found[1].higher_is_better

    def efficiency(self, decode_seconds: float, n_test: int) -> Any:
        """The ``efficiency`` of the record: see :mod:`rrgbench.run.efficiency` for every figure."""
        from rrgbench.run.efficiency import EfficiencyInputs, measure_efficiency

        inputs = EfficiencyInputs(
            model=self.model, config=self.config, device=self.device, test_loader=self.loader("test", train=False),
            bos_id=self.tokenizer.bos_id, eos_id=self.tokenizer.eos_id,
            train_step_seconds=list(self.state.step_seconds), train_samples=list(self.state.step_samples),
            test_set_decode=decode_cost(decode_seconds, n_test), registry=self.registry,
            autocast=lambda: autocast(self.device, self.config), log=self.request.log)
        settings = inputs.settings
        with phase(f"efficiency ({settings.mode if settings else self.config.efficiency.mode})", self.log):
            return measure_efficiency(inputs)

    def _export_meta(self) -> dict[str, Any]:
        """What ``model.json`` says beside ``model.safetensors``: enough to rebuild and check the model."""
        return {"n_views": self.source.n_views, "cleaning_style": self.source.cleaning_style,
                "step": self.state.step, "best_epoch": self.state.best_epoch, "init_report": self.state.init_report,
                "selected_on": {"split": "val", "metric": self.config.train.select_metric,
                                "value": self.validation().best_value}}

    def _log_row(self, row: dict[str, Any]) -> None:
        """Append one row to train_log.jsonl (rank 0); the count goes into every checkpoint."""
        if self.writer.log_row(row):
            self.state.log_rows += 1


def run_training(registry: Registry, config: RunConfig, request: RunRequest) -> RunDir | None:
    """Train and evaluate one configuration; returns its run directory (results.json inside).

    With ``request.resume`` an unfinished run of this configuration continues (see
    :func:`rrgbench.run.resume.resolve_resume`); one that already finished is returned untouched. In a
    multi-process job only rank 0 returns the run directory; the other ranks return None.
    """
    info = distributed.setup(request.device)
    log = distributed.silence(info, request.log)
    target = distributed.on_main(lambda: _resume_target(registry, config, request)) if request.resume else None
    if target is not None and target[1] == "finished":
        log(f"already finished: {target[0]} (nothing to resume)")
        return RunDir(Path(target[0])) if info.is_main else None
    trainer = Trainer(registry, config, request)
    if target is not None:
        trainer.resume(RunDir(Path(target[0])))
    return trainer.fit()


def _resume_target(registry: Registry, config: RunConfig, request: RunRequest) -> tuple[str, str] | None:
    """(run directory, its status) to continue, or None with a note on why a new run starts."""
    assert request.resume is not None
    run = resolve_resume(registry, request.out, config, request.resume)
    if run is not None:
        return str(run.path), run.status().get("status", "unknown")
    message = f"--resume: no unfinished run of this configuration in {request.out}; starting a new run"
    misses = near_misses(registry, request.out, config)
    if misses:
        other, diff = misses[-1]
        message += f" (unfinished {other.path.name} differs: {'; '.join(diff[:3])})"
    request.log(message)
    return None
