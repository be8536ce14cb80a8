"""Efficiency figures of one trained model, for the ``efficiency`` section of ``results.json``.

What is measured (after training and the single test-set decode, on the selected weights, in eval
mode, under the same autocast as decoding; CUDA is synchronised around every timed region):

``parameters``
    total and trainable counts, and per component (encoder, memory, alignment, decoder).
``train``
    step time (median, p90, mean; forward + backward + optimiser, data loading excluded; the first
    step is excluded as warm-up when there are more) and training samples per second.
``inference``
    ``latency_batch1``: seconds to generate one study's report with the run's decoding settings
    (beam search, beam size, max length) at batch 1 — ``warmup`` untimed calls, then ``repeats``
    timed calls cycling over the first test studies; median, p90 and the mean number of generated
    tokens (latency depends on how long the reports are). ``throughput``: studies per second when
    generating a whole test batch at the evaluation batch size (no extra warm-up: the test-set decode
    that precedes it warmed those shapes up); ``batch_repeats`` timed calls, fewer once the
    ``budget_seconds`` are spent.
``test_set_decode``
    wall time of the real test-set decode (data loading included).
``peak_memory``
    on CUDA ``torch.cuda.max_memory_allocated`` (and reserved); everywhere the process's peak
    resident set size (Linux ``VmHWM``, else ``resource.getrusage``). ``run`` is the peak up to the
    end of the test decode (training included); ``inference`` the peak while measuring inference at
    the evaluation batch size (counters reset in between; on CPU it is the whole process's RSS, so
    it includes the interpreter and the data). :func:`reset_peak_memory` lets a driver that runs
    several runs in one process (``rrgbench suite``) start each run from a clean counter.
``components`` and ``retrieval``
    per-component wall time from forward pre/post hooks on the encoder, memory and alignment modules
    and timers around the decoder's methods (``embed``, ``encode``, ``init_cache``, ``decode``), plus
    any module *inside* the decoder whose class name contains ``Memory`` (R2Gen's relational memory),
    reported nested under the decoder. Profiled over a teacher-forced forward pass on test studies
    at the training batch size (``data.batch_size``) and over generation at batch 1.
    ``retrieval.share_of_forward`` / ``share_of_generate`` is the memory modules' time over the
    total (unavailable, with the reason, for a model without memory). ``retrieval.vs_no_memory``
    compares the same inputs with and without memory on two length-independent workloads: that
    teacher-forced forward pass and a fixed-length incremental decode (``decode.max_len`` steps with
    ``beam_size`` rows, no early stop), timed in turns (with, without, with, ...) so that a drifting
    machine load affects both alike. The counterpart is (decision) the recipe named by the model
    registration's ``baseline_without_memory`` extra when it declares one (``method: "recipe"``,
    built with the same dataset, profile and applicable overrides; random weights, which do not
    change the cost of a fixed-length workload), otherwise the same trained model with its memory
    temporarily replaced by the identity (``method: "identity"``). A model without a memory
    component records ``vs_no_memory`` as unavailable with the reason.

Every measurement is guarded: if one fails, its entry holds ``{"error": ...}`` and the run still
finishes. How much is measured is the run's ``efficiency`` section (``--efficiency`` on the command line,
``efficiency:`` in a suite): ``full`` (2 warm-up + 5 timed calls at batch 1, 2 timed batches, 1 warm-up + 2
profiled repeats), ``fast`` (1 + 2, 1 batch, 1 profiled repeat), ``off`` (parameters, training step times
and the test decode only) or ``auto`` (``fast`` for a run of under 2,000 training steps, else ``full``);
the settings used are recorded.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from rrgbench.config import EfficiencyOptions
from rrgbench.data.loader import Batch
from rrgbench.extension.components import NoMemory, index_batch
from rrgbench.record import DecodeCost, Efficiency, Inference, Retrieval, Timing, TrainCost

DECODER_METHODS = ("embed", "encode", "init_cache", "decode")
Logger = Callable[[str], None]


# -- settings -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EfficiencySettings:
    """How much to measure (the run's ``efficiency`` section resolved to counts)."""

    mode: str = "full"  # full, fast or off (auto is resolved by :meth:`for_run`)
    warmup: int = 2  # untimed generate calls at batch 1
    repeats: int = 5  # timed generate calls at batch 1
    batch_repeats: int = 2  # timed generate calls on a whole test batch
    profile_repeats: int = 2  # profiled (hooked) repeats of each workload (and of the no-memory comparison)
    budget_seconds: float = 120.0  # soft cap on the time spent on inference measurements

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @classmethod
    def for_run(cls, options: EfficiencyOptions, train_steps: int) -> EfficiencySettings:
        """``auto`` is ``fast`` for runs of under :data:`AUTO_FULL_STEPS` training steps, else ``full``."""
        mode = options.mode
        if mode == "auto":
            mode = "full" if train_steps >= AUTO_FULL_STEPS else "fast"
        return cls(mode=mode, budget_seconds=options.budget_seconds, **PRESETS.get(mode, {}))


AUTO_FULL_STEPS = 2000
PRESETS: dict[str, dict[str, int]] = {
    "full": {"warmup": 2, "repeats": 5, "batch_repeats": 2, "profile_repeats": 2},
    "fast": {"warmup": 1, "repeats": 2, "batch_repeats": 1, "profile_repeats": 1},
    "off": {"warmup": 0, "repeats": 0, "batch_repeats": 0, "profile_repeats": 0},
}


@dataclass
class EfficiencyInputs:
    """What the trainer hands over at the end of a run."""

    model: nn.Module
    config: Any  # RunConfig
    device: torch.device
    test_loader: Any
    bos_id: int
    eos_id: int
    train_step_seconds: list[float] = field(default_factory=list)
    train_samples: list[int] = field(default_factory=list)
    test_set_decode: DecodeCost | None = None
    registry: Any = None
    autocast: Callable[[], Any] = nullcontext
    log: Logger | None = None
    settings: EfficiencySettings | None = None

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = EfficiencySettings.for_run(self.config.efficiency, len(self.train_step_seconds))


# -- small helpers ------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so that wall-clock timers measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def summarize(seconds: list[float]) -> dict[str, Any]:
    """Median, p90, mean and count of a list of durations (warm-up already excluded)."""
    if not seconds:
        return {"median": None, "p90": None, "mean": None, "n": 0}
    values = np.asarray(seconds, dtype=float)
    return {"median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "mean": float(values.mean()), "n": len(seconds)}


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Run ``fn`` once; seconds taken (CUDA synchronised before and after) and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def train_figures(step_seconds: list[float], samples: list[int]) -> TrainCost | None:
    """Step time summary and samples/s (the median batch over the median step: a pause during training
    moves neither); the first step is warm-up when there are several. None when nothing was trained."""
    steps, counts = (step_seconds[1:], samples[1:]) if len(step_seconds) > 1 else (step_seconds, samples)
    if not steps:
        return None
    timing = summarize(steps)
    return TrainCost(steps_timed=len(steps), warmup_steps_excluded=len(step_seconds) - len(steps),
                     step_seconds=Timing(**timing),
                     samples_per_second=float(np.median(counts)) / timing["median"] if timing["median"] else None)


# -- peak memory --------------------------------------------------------------------------------
def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process (Linux VmHWM, resettable; else getrusage)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_memory(device: torch.device | None = None) -> bool:
    """Reset the peak counters (CUDA, and Linux's VmHWM via /proc/self/clear_refs); True if RSS was reset."""
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Current peak figures: CUDA max allocated/reserved on a GPU, peak RSS everywhere."""
    figures: dict[str, Any] = {"peak_rss_bytes": peak_rss_bytes()}
    if device.type == "cuda":
        figures["cuda_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated(device))
        figures["cuda_max_reserved_bytes"] = int(torch.cuda.max_memory_reserved(device))
    return figures


# -- per-component profiling --------------------------------------------------------------------
class ComponentProfiler:
    """Accumulates wall time per component of a :class:`~rrgbench.model.ReportGenerator`.

    Forward pre/post hooks time ``encoder``, ``memory`` and ``alignment``; the decoder is used
    through its methods rather than ``forward``, so those are wrapped on the instance for the
    duration. Modules inside the decoder whose class name contains ``Memory`` are timed too, under
    ``decoder/<name>``. Every timer synchronises CUDA. Use as a context manager; :attr:`seconds`
    holds the totals.
    """

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model, device
        self.seconds: dict[str, float] = {}
        self._starts: dict[str, list[float]] = {}
        self._handles: list[Any] = []
        self._patched: list[str] = []

    @property
    def nested_memories(self) -> list[str]:
        """Names (``decoder/<path>``) of memory-like modules inside the decoder."""
        return [f"decoder/{name}" for name, _ in _decoder_memories(self.model)]

    def _begin(self, key: str) -> None:
        synchronize(self.device)
        self._starts.setdefault(key, []).append(time.perf_counter())

    def _end(self, key: str) -> None:
        synchronize(self.device)
        start = self._starts[key].pop()
        if not self._starts[key]:  # re-entrant calls count once, at the outermost level
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - start

    def _hook(self, module: nn.Module, key: str) -> None:
        self._handles.append(module.register_forward_pre_hook(lambda *_: self._begin(key)))
        self._handles.append(module.register_forward_hook(lambda *_: self._end(key)))

    def _wrap_decoder(self) -> None:
        decoder = self.model.decoder
        for name in DECODER_METHODS:
            method = getattr(decoder, name, None)
            if method is None:
                continue

            def wrapper(*args: Any, _method: Callable[..., Any] = method, **kwargs: Any) -> Any:
                self._begin("decoder")
                try:
                    return _method(*args, **kwargs)
                finally:
                    self._end("decoder")

            setattr(decoder, name, wrapper)
            self._patched.append(name)

    def __enter__(self) -> ComponentProfiler:
        for name in ("encoder", "memory", "alignment"):
            module = getattr(self.model, name, None)
            if isinstance(module, nn.Module):
                self._hook(module, name)
        for name, module in _decoder_memories(self.model):
            self._hook(module, f"decoder/{name}")
        self._wrap_decoder()
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        for name in self._patched:
            delattr(self.model.decoder, name)
        self._handles, self._patched = [], []


def _decoder_memories(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Memory-like submodules of the decoder (outermost only), e.g. R2Gen's ``rm``."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.decoder.named_modules():
        if name and "memory" in type(module).__name__.lower():
            if not any(name.startswith(prefix + ".") for prefix, _ in found):
                found.append((name, module))
    return found


def has_memory(model: nn.Module) -> bool:
    """True when the model has a memory component (not the identity)."""
    return not isinstance(model.memory, NoMemory) and bool(getattr(model.memory, "applies_to", ()))


def profile_components(model: nn.Module, device: torch.device, workload: Callable[[], Any],
                       repeats: int) -> dict[str, Any]:
    """Per-component seconds (mean per call), total, and shares of ``workload`` (after 1 warm-up)."""
    workload()
    totals: list[float] = []
    with ComponentProfiler(model, device) as profiler:
        for _ in range(max(repeats, 1)):
            seconds, _ = timed(workload, device)
            totals.append(seconds)
    n = max(repeats, 1)
    per_call = {key: value / n for key, value in sorted(profiler.seconds.items())}
    total = float(np.mean(totals))
    memory_keys = [k for k in per_call if k == "memory" or k in profiler.nested_memories]
    memory_seconds = sum(per_call[k] for k in memory_keys)
    return {"total_seconds": total, "seconds": per_call,
            "share": {k: v / total for k, v in per_call.items()} if total else {},
            "memory_modules": memory_keys, "memory_seconds": memory_seconds if memory_keys else None,
            "memory_share": memory_seconds / total if total and memory_keys else None, "repeats": n}


# -- workloads -----------------------------------------------------------------------------------
def first_batch(loader: Any, device: torch.device) -> Any:
    """The first test batch, on the device."""
    for batch in loader:
        return batch.to(device)
    raise ValueError("the test loader is empty")


def generate_fn(model: nn.Module, images: torch.Tensor, config: Any, bos_id: int, eos_id: int,
                autocast: Callable[[], Any]) -> Callable[[], list[list[int]]]:
    """A call that generates reports for ``images`` with the run's decoding settings."""
    from rrgbench.decode import generate

    dec, max_len = config.decode, config.decode_max_len

    def run() -> list[list[int]]:
        with autocast():  # generate itself runs without autograd
            return generate(model, images, dec.method, dec.beam_size, max_len, bos_id, eos_id)

    return run


def forward_fn(model: nn.Module, images: torch.Tensor, target_ids: torch.Tensor,
               autocast: Callable[[], Any]) -> Callable[[], Any]:
    """A teacher-forced forward pass (no gradients) on one batch."""

    def run() -> Any:
        with torch.no_grad(), autocast():
            return model(images, target_ids)

    return run


def fixed_length_fn(model: nn.Module, images: torch.Tensor, steps: int, rows: int, bos_id: int,
                    autocast: Callable[[], Any]) -> Callable[[], None]:
    """Prepare + exactly ``steps`` incremental steps on ``rows`` copies of one study (no early stop)."""

    def run() -> None:
        with torch.no_grad(), autocast():
            encoded = model.prepare(images[:1])
            expand = torch.zeros(rows, dtype=torch.long, device=images.device)
            encoded = index_batch(encoded, expand)
            cache = model.decoder.init_cache(encoded)
            tokens = torch.full((rows,), bos_id, dtype=torch.long, device=images.device)
            for _ in range(steps):
                logits, cache = model.step(encoded, tokens, cache)
                tokens = logits.argmax(dim=-1)

    return run


def repeat_timed(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int,
                 deadline: float | None = None) -> tuple[list[float], list[Any]]:
    """``warmup`` untimed calls, then up to ``repeats`` timed ones (at least one, stopping at ``deadline``)."""
    for _ in range(warmup):
        fn()
    seconds, results = [], []
    for i in range(max(repeats, 1)):
        if i and deadline is not None and time.perf_counter() > deadline:
            break
        elapsed, result = timed(fn, device)
        seconds.append(elapsed)
        results.append(result)
    return seconds, results


# -- the measurements -----------------------------------------------------------------------------
def latency_batch1(inputs: EfficiencyInputs, batch: Any, deadline: float) -> dict[str, Any]:
    """Per-study generation latency at batch 1, cycling over the first test studies."""
    s, n = inputs.settings, batch.images.shape[0]
    calls = [generate_fn(inputs.model, batch.images[i : i + 1], inputs.config, inputs.bos_id, inputs.eos_id,
                         inputs.autocast) for i in range(min(n, max(s.repeats, 1)))]
    for i in range(s.warmup):
        calls[i % len(calls)]()
    seconds, tokens = [], []
    for i in range(max(s.repeats, 1)):
        if i and time.perf_counter() > deadline:
            break
        elapsed, result = timed(calls[i % len(calls)], inputs.device)
        seconds.append(elapsed)
        tokens.append(len(result[0]))
    return {"batch_size": 1, "warmup": s.warmup, "seconds": summarize(seconds),
            "mean_generated_tokens": float(np.mean(tokens))}


def throughput(inputs: EfficiencyInputs, batch: Any, deadline: float) -> dict[str, Any]:
    """Studies per second generating one whole test batch at the evaluation batch size."""
    n = batch.images.shape[0]
    fn = generate_fn(inputs.model, batch.images, inputs.config, inputs.bos_id, inputs.eos_id, inputs.autocast)
    seconds, results = repeat_timed(fn, inputs.device, 0, inputs.settings.batch_repeats, deadline)
    stats = summarize(seconds)
    return {"batch_size": n, "warmup": "the test-set decode", "seconds": stats,
            "studies_per_second": n / stats["median"] if stats["median"] else None,
            "studies_per_second_p90_batch": n / stats["p90"] if stats["p90"] else None,
            "mean_generated_tokens": float(np.mean([len(r) for out in results for r in out]))}


@contextmanager
def memory_replaced_by_identity(model: nn.Module) -> Iterator[None]:
    """Temporarily swap the model's memory for :class:`~rrgbench.extension.components.NoMemory`."""
    original = model.memory
    model.memory = NoMemory().to(next(model.parameters()).device)
    try:
        yield
    finally:
        model.memory = original


def counterpart_model(inputs: EfficiencyInputs, name: str) -> nn.Module:
    """The declared no-memory recipe, built with this run's dataset, profile and applicable overrides."""
    from rrgbench.config import applicable, resolve_config
    from rrgbench.model import build_model

    registry, config = inputs.registry, inputs.config
    resolved = resolve_config(registry, name, config.dataset,
                              applicable(registry, name, config.dataset, config.user_overrides),
                              profile=config.profile, seed=config.seed,
                              suite_overrides=config.overrides.get("suite"))
    context = dataclasses.replace(inputs.model.context, load_weights=False)  # random weights suffice (see above)
    return build_model(registry, resolved, context).to(inputs.device).eval()


def vs_no_memory(inputs: EfficiencyInputs, batch: Any) -> dict[str, Any]:
    """Forward and fixed-length decoding time with and without memory (see the module docstring)."""
    model, config, device = inputs.model, inputs.config, inputs.device
    recipe = inputs.registry.get("model", config.model) if inputs.registry is not None else None
    counterpart = recipe.extra.get("baseline_without_memory") if recipe is not None else None
    if not counterpart and not has_memory(model):
        nested = [name for name, _ in _decoder_memories(model)]
        reason = "the model has no memory component" + (
            f" (its decoder's {', '.join(nested)} cannot be removed without changing the model)" if nested else "")
        return {"method": None, "unavailable": reason}
    steps = config.decode_max_len
    rows = 1 if config.decode.method == "greedy" else config.decode.beam_size

    def workloads(subject: nn.Module) -> tuple[Callable[[], Any], Callable[[], Any]]:
        return (forward_fn(subject, batch.images, batch.target_ids, inputs.autocast),
                fixed_length_fn(subject, batch.images, steps, rows, inputs.bos_id, inputs.autocast))

    forward, decode = workloads(model)
    if counterpart:
        method, reference = "recipe", counterpart
        forward_without, decode_without = workloads(counterpart_model(inputs, counterpart))
    else:
        method, reference = "identity", "the same model with its memory replaced by the identity"
        forward_without, decode_without = (_without_memory(model, fn) for fn in workloads(model))
    seconds = interleaved({"forward": forward, "forward_without": forward_without, "decode": decode,
                           "decode_without": decode_without}, device, max(inputs.settings.profile_repeats, 1))
    return {
        "method": method, "reference": reference, "batch_size": int(batch.images.shape[0]),
        "decode_steps": steps, "decode_rows": rows, "repeats": max(inputs.settings.profile_repeats, 1),
        "forward_seconds": seconds["forward"], "forward_seconds_without": seconds["forward_without"],
        "forward_overhead": _overhead(seconds["forward"], seconds["forward_without"]),
        "decode_seconds": seconds["decode"], "decode_seconds_without": seconds["decode_without"],
        "decode_overhead": _overhead(seconds["decode"], seconds["decode_without"]),
    }


def _without_memory(model: nn.Module, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with memory_replaced_by_identity(model):
            return fn()

    return run


def interleaved(workloads: dict[str, Callable[[], Any]], device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of each workload after one warm-up each, timed in turns (with, without, with, ...)
    so that a machine that slows down or speeds up meanwhile affects all of them alike."""
    for fn in workloads.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(repeats):
        for name, fn in workloads.items():
            times[name].append(timed(fn, device)[0])
    return {name: float(np.median(values)) for name, values in times.items()}


def _overhead(with_memory: float | None, without: float | None) -> float | None:
    """Relative extra time: 0.25 means the memory makes it 25% slower."""
    if not with_memory or not without:
        return None
    return with_memory / without - 1.0


def training_sized(batch: Any, config: Any) -> Any:
    """The first ``data.batch_size`` studies of a test batch: the forward pass is profiled at training shape."""
    n = config.data.batch_size
    return Batch(batch.ids[:n], batch.images[:n], batch.target_ids[:n], batch.reports[:n])


def retrieval_figures(inputs: EfficiencyInputs, batch: Any) -> tuple[dict[str, Any], Retrieval]:
    """Component profiles (forward, generation at batch 1) and the retrieval overhead summary."""
    model, device, reps = inputs.model, inputs.device, inputs.settings.profile_repeats
    components: dict[str, Any] = {}
    components["forward"] = _guard(lambda: {
        "batch_size": int(batch.images.shape[0]),
        **profile_components(model, device, forward_fn(model, batch.images, batch.target_ids, inputs.autocast),
                             reps)})
    one = generate_fn(model, batch.images[:1], inputs.config, inputs.bos_id, inputs.eos_id, inputs.autocast)
    components["generate_batch1"] = _guard(lambda: {"batch_size": 1,
                                                    **profile_components(model, device, one, reps)})
    retrieval = Retrieval(
        memory=inputs.config.components.get("memory", "none"),
        memory_size=model.memory.memory_size(),
        memory_modules=components["forward"].get("memory_modules", []),
        share_of_forward=components["forward"].get("memory_share"),
        share_of_generate=components["generate_batch1"].get("memory_share"),
        vs_no_memory=_guard(lambda: vs_no_memory(inputs, batch)),
    )
    if not retrieval.memory_modules and "error" not in components["forward"]:
        retrieval.unavailable = "the model has no memory component"
    return components, retrieval


def _guard(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure becomes ``{"error": ...}`` instead of failing the run."""
    try:
        return fn()
    except Exception as exc:  # a profiling problem must not lose a finished training run
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def measure_efficiency(inputs: EfficiencyInputs) -> Efficiency:
    """The whole ``efficiency`` of a training record (see the module docstring)."""
    from rrgbench.run.evaluate import parameter_counts

    start = time.perf_counter()
    model, device, settings = inputs.model, inputs.device, inputs.settings
    assert settings is not None
    was_training = model.training
    model.eval()
    record = Efficiency(
        parameters=parameter_counts(model),
        train=train_figures(inputs.train_step_seconds, inputs.train_samples),
        test_set_decode=inputs.test_set_decode,
        peak_memory={"run": peak_memory(device)},
        device={"type": device.type, "torch_threads": torch.get_num_threads(),
                "name": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        settings=asdict(settings),
    )
    if not settings.enabled:
        record.inference = Inference(unavailable="inference measurements switched off (efficiency.mode off)")
        record.retrieval = Retrieval(unavailable="measurements switched off (efficiency.mode off)")
        return record
    try:
        batch = first_batch(inputs.test_loader, device)
        deadline = start + settings.budget_seconds
        reset_peak_memory(device)
        record.inference = Inference(latency_batch1=_guard(lambda: latency_batch1(inputs, batch, deadline)),
                                     throughput=_guard(lambda: throughput(inputs, batch, deadline)))
        record.peak_memory["inference"] = peak_memory(device)
        record.components, record.retrieval = retrieval_figures(inputs, training_sized(batch, inputs.config))
    finally:
        model.train(was_training)
    record.measurement_seconds = time.perf_counter() - start
    return record
