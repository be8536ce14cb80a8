"""Paper-size cost of every recipe: one training step and one beam-3 decode of 16 studies.

Workloads, at the papers' settings: every registered recipe (``rrgbench list models``) resolved for
``iu-xray`` at the ``paper`` profile with the project's own ``resolve_config`` + ``build_model``: its own
backbone (ResNet-101; MCSAM's ResNet-50), 2 views (frontal + lateral) of 224 px, ``d_model`` 512, a
2,048-slot memory where the recipe has one, batch 16, beam 3, 60 tokens; random weights and a vocabulary
of 760 tokens (about IU X-Ray's at threshold 3). Costs at a fixed length do not depend on the weights.

* ``train``: one training step on 16 studies with 60-token targets (``bos``, 59 words, ``eos``): forward,
  backward, gradient clipping as configured and the project's optimizer (``rrgbench.run.setup.make_optimizer``),
  in training mode. A recipe with nothing trainable (``nearest-neighbor``) is skipped.
  Its floating-point operations are counted once, outside the timed rounds, by
  ``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions and attention, forward and
  backward; ``extra_info['train_flops']``), so the table shows the achieved TFLOP/s of the step.
* ``decode``: ``rrgbench.decode.generate`` at beam 3 on 16 studies: ``prepare`` (the CNN over 2 x 16 images,
  the memory, alignment and the decoder's context encoder) and exactly 60 beam steps. ``eos`` is masked
  (``NoEos``) so every recipe decodes the same length; a trained model stops earlier (early exit once every
  beam has ended), so this is the cost of the longest report. The seconds spent in ``prepare`` are recorded
  per call (``extra_info['prepare_s']``): no decoding strategy removes them, so they are the floor.

``benchmarks/paper_size_table.py`` turns the saved JSON into the Markdown table
(``benchmarks/results/paper_size.md``), with the speed-up over official R2Gen's beam-3 decode of 16 studies
(50.2 s, the figure quoted in issue 18) and how close each decode is to its floor.

On CUDA both workloads run under bf16 autocast (``train.amp``, as the trainer does): ``benchmarks/gpu_check.sh``
runs this module there and writes the same table. ``RRGBENCH_BENCH_SIZE=tiny`` runs the benchmarks at the tiny
size below instead of the paper's (the script's CPU smoke mode, in CI).

Test mode: the plain test below builds every recipe at the ``small`` profile (the synthetic size: d 128,
``regnetx_002`` at 64 px) with 2 studies and 6 tokens and runs the same workload functions, so
``pytest benchmarks --benchmark-skip`` (CI) checks this module without the paper-size cost.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from benchutil import index_random_reports
from reference_decoding import NoEos

from rrgbench.config import resolve_config
from rrgbench.decode import generate
from rrgbench.extension.components import BuildContext
from rrgbench.extension.plugins import registry as get_registry
from rrgbench.model import ReportGenerator, build_model
from rrgbench.run.efficiency import synchronize
from rrgbench.run.setup import autocast, make_optimizer

PAD, BOS, EOS = 0, 1, 2
DATASET = "iu-xray"
RECIPES = get_registry().names("model")
INDEX_STUDIES = 2069  # the nearest-neighbour index: IU X-Ray's training split in R2Gen's annotation.json


@dataclass(frozen=True)
class Size:
    """How big the workload is: the profile a recipe is resolved at, and what the profile does not set."""

    name: str
    profile: str
    vocab: int
    views: int = 2
    batch: int | None = None  # None: the profile's data.batch_size
    max_len: int | None = None  # None: the profile's data.max_len


PAPER = Size("paper", "paper", vocab=760)
TINY = Size("tiny", "small", vocab=40, batch=2, max_len=6)
SIZES = {size.name: size for size in (PAPER, TINY)}


def benchmark_size() -> Size:
    """The size the benchmarks run at: the paper's, or ``RRGBENCH_BENCH_SIZE`` (``paper`` or ``tiny``)."""
    name = os.environ.get("RRGBENCH_BENCH_SIZE", "paper")
    if name not in SIZES:
        raise ValueError(f"RRGBENCH_BENCH_SIZE must be one of {', '.join(SIZES)}, got {name!r}")
    return SIZES[name]


@dataclass
class Workload:
    """A built model with its optimizer and random inputs; ``prepare_s`` collects the timed image sides."""

    recipe: str
    model: ReportGenerator
    optimizer: torch.optim.Optimizer
    config: Any
    images: torch.Tensor
    targets: torch.Tensor
    beam: int
    max_len: int
    device: torch.device
    prepare_s: list[float] = field(default_factory=list)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    def info(self) -> dict[str, Any]:
        """What the table shows next to the timings."""
        config = self.config
        return {"recipe": self.recipe, "size": "x".join(map(str, self.images.shape)),
                "backbone": getattr(config.encoder, "backbone", None),
                "memory_slots": self.model.memory.memory_size(),
                "d_model": config.model_options.d_model, "beam": self.beam, "max_len": self.max_len,
                "batch": self.images.shape[0], "vocab": self.model.context.vocab_size,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "threads": torch.get_num_threads(), "device": self.device.type,
                "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
                "channels_last": bool(getattr(config.encoder, "channels_last", False)),
                "autocast": "bf16" if self.device.type == "cuda" and config.train.amp else None}


def build_workload(registry: Any, recipe: str, size: Size) -> Workload:
    """The recipe built at ``size`` with random weights, its optimizer, random images and targets."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = resolve_config(registry, recipe, DATASET, profile=size.profile)
    data = config.data
    batch, max_len = size.batch or data.batch_size, size.max_len or data.max_len
    context = BuildContext(d_model=config.model_options.d_model, vocab_size=size.vocab, pad_id=PAD,
                           bos_id=BOS, eos_id=EOS, max_len=max_len, n_views=size.views,
                           image_size=data.image_size)
    torch.manual_seed(0)
    model = build_model(registry, config, context).to(device)
    index_random_reports(model, n_studies=INDEX_STUDIES if size is PAPER else 8, length=max_len + 1,
                         bos_id=BOS, eos_id=EOS)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, size.views, 3, data.image_size, data.image_size, generator=generator)
    targets = torch.randint(EOS + 1, size.vocab, (batch, max_len + 1), generator=generator)
    targets[:, 0], targets[:, -1] = BOS, EOS
    return Workload(recipe, model, make_optimizer(model, config.train), config, images.to(device),
                    targets.to(device), config.decode.beam_size, max_len, device)


def train_step(work: Workload) -> float:
    """One optimisation step on the batch (as the trainer's step: forward, backward, clip, update); the loss."""
    model, train = work.model.train(), work.config.train
    with autocast(work.device, work.config):
        loss = model(work.images, work.targets).loss
    work.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if train.clip_value:
        torch.nn.utils.clip_grad_value_(model.parameters(), train.clip_value)
    if train.clip_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_norm, foreach=True)
    work.optimizer.step()
    synchronize(work.device)
    return float(loss.detach())


def train_flops(work: Workload) -> int:
    """Floating-point operations of one training step (counted while running one, which updates the weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        train_step(work)
    return int(counter.get_total_flops())


class _TimedPrepare(NoEos):
    """``NoEos`` whose ``prepare`` adds its own seconds to the workload's ``prepare_s``."""

    def __init__(self, work: Workload) -> None:
        super().__init__(work.model, EOS)
        self.work = work

    def prepare(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        synchronize(self.work.device)
        start = time.perf_counter()
        encoded = super().prepare(images)
        synchronize(self.work.device)
        self.work.prepare_s.append(time.perf_counter() - start)
        return encoded


def decode(work: Workload) -> list[list[int]]:
    """Beam search of the whole batch for exactly ``max_len`` steps, images encoded inside (see docstring)."""
    work.model.eval()
    with torch.no_grad(), autocast(work.device, work.config):
        tokens = generate(_TimedPrepare(work), work.images, "beam", work.beam, work.max_len, BOS, EOS)
    synchronize(work.device)
    return tokens


def _loadavg() -> float | None:
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return float(handle.read().split()[0])
    except OSError:
        return None


def _record(benchmark: Any, work: Workload, **extra: Any) -> None:
    benchmark.extra_info.update({**work.info(), **extra, "loadavg_1min_after": _loadavg()})


# ---------------------------------------------------------------------------------- benchmarks (paper size)


@pytest.mark.parametrize("recipe", RECIPES)
def test_paper_size_train_step(benchmark, registry, recipe):
    work = build_workload(registry, recipe, benchmark_size())
    if not work.trainable:
        pytest.skip(f"{recipe} has nothing trainable (no training step)")
    flops = train_flops(work)
    load = _loadavg()
    loss = benchmark.pedantic(train_step, args=(work,), rounds=3, warmup_rounds=1)
    assert math.isfinite(loss)
    _record(benchmark, work, workload="train", loadavg_1min_before=load, train_flops=flops)


@pytest.mark.parametrize("recipe", RECIPES)
def test_paper_size_beam3_decode(benchmark, registry, recipe):
    work = build_workload(registry, recipe, benchmark_size())
    load = _loadavg()
    tokens = benchmark.pedantic(decode, args=(work,), rounds=2, warmup_rounds=1)
    assert [len(row) for row in tokens] == [work.max_len] * work.images.shape[0]
    _record(benchmark, work, workload="decode", loadavg_1min_before=load, prepare_s=work.prepare_s[1:])


# ---------------------------------------------------------------------------------- test mode (tiny size)


@pytest.mark.parametrize("recipe", RECIPES)
def test_workloads_run_at_tiny_size(registry, recipe):
    """The benchmarked functions on every recipe, small: a step changes the weights, decoding has full length."""
    work = build_workload(registry, recipe, TINY)
    assert work.images.shape == (2, 2, 3, 64, 64) and work.max_len == 6 and work.beam == 3
    if work.trainable:
        before = [p.detach().clone() for p in work.model.parameters() if p.requires_grad]
        assert math.isfinite(train_step(work))
        after = [p for p in work.model.parameters() if p.requires_grad]
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    else:
        assert recipe == "nearest-neighbor"
    assert [len(row) for row in decode(work)] == [6, 6]
    assert len(work.prepare_s) == 1 and work.prepare_s[0] > 0
    if work.trainable:
        assert train_flops(work) > 0
    info = work.info()
    assert info["batch"] == 2 and info["beam"] == 3 and info["threads"] >= 1 and info["parameters"] > 0


def test_paper_size_is_the_papers():
    """The paper-size workload resolves to the papers' settings (no model is built)."""
    registry = get_registry()
    for recipe in ("mcsam", "r2gen", "r2gencmn"):
        config = resolve_config(registry, recipe, DATASET, profile=PAPER.profile)
        data = config.data
        assert (data.batch_size, data.image_size, data.max_len) == (16, 224, 60)
        assert config.model_options.d_model == 512 and config.decode.beam_size == 3
        assert config.encoder.backbone == ("resnet50" if recipe == "mcsam" else "resnet101")
    assert resolve_config(registry, "r2gencmn", DATASET).memory.size == 2048


def test_markdown_table_from_benchmark_json():
    from paper_size_table import markdown_table

    common = {"backbone": "resnet101", "parameters": 12_300_000, "threads": 2, "device": "cpu", "batch": 16,
              "size": "16x2x3x224x224", "d_model": 512, "vocab": 760, "beam": 3, "max_len": 60}
    data = {"datetime": "2026-11-30T12:00:00", "machine_info": {"cpu": {"brand_raw": "Test CPU"}}, "benchmarks": [
        {"stats": {"median": 4.0}, "extra_info": {**common, "recipe": "r2gen", "workload": "train",
                                                  "loadavg_1min_before": 1.5, "loadavg_1min_after": 2.5,
                                                  "train_flops": 2.0e12}},
        {"stats": {"median": 5.02}, "extra_info": {**common, "recipe": "r2gen", "workload": "decode",
                                                   "prepare_s": [2.0, 2.2], "loadavg_1min_before": 1.0}},
        {"stats": {"median": 50.2}, "extra_info": {**common, "recipe": "nearest-neighbor", "workload": "decode",
                                                   "memory_slots": None, "prepare_s": [25.1]}},
        {"stats": {"median": 1.0}, "extra_info": {"unrelated": True}},
    ]}
    text = markdown_table(data)
    assert "Test CPU; device cpu; torch threads 2; 1-minute load average 1.00-2.50" in text
    rows = [line for line in text.splitlines() if line.startswith("| r2gen") or line.startswith("| nearest")]
    assert rows == [
        "| nearest-neighbor | resnet101 | - | 12.3 M | n/a (nothing trainable) | n/a | 50.20 | 25.10 | 25.10 | 1.0x"
        " | 2.0x | 50% |",
        "| r2gen | resnet101 | - | 12.3 M | 4.00 | 0.5 | 5.02 | 2.10 | 2.92 | 10.0x | 23.9x | 42% |",
    ]
    cuda = {**data, "benchmarks": [{**entry, "extra_info": {**entry["extra_info"], "device": "cuda",
                                                            "device_name": "NVIDIA H200", "autocast": "bf16"}}
                                   for entry in data["benchmarks"][:2]]}
    assert "Test CPU; NVIDIA H200; device cuda (bf16 autocast);" in markdown_table(cuda)
