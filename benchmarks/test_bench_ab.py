"""Interleaved A/B timings at paper size: each speed choice of the project against its alternative.

On a shared machine absolute seconds say little; the ratio of two workloads timed alternately in one
process does (both see the same stretch of load). Every benchmark here times variant ``A`` with
pytest-benchmark and runs one timed call of variant ``B`` right before each of its rounds (warm-up
included, not counted), then reports ``B / A`` (ratio of the medians, and of the fastest rounds, which a
busy machine disturbs least) under ``rrgbench_ratios`` in the saved JSON and in each ``extra_info``.

Cases (paper size: ``test_bench_paper_size.py``'s workloads, batch 16, 2 views of 224 px, d 512, N_m 2,048,
beam 3, 60 steps with ``eos`` masked, random weights):

* ``cnn-eval``: the image side of a decode, the backbone's forward over 32 images without autograd, in
  ``channels_last`` (A, ``encoder.channels_last``, the default) and in the default layout (B); ResNet-101
  (R2Gen, R2GenCMN) and ResNet-50 (MCSAM);
* ``cnn-train``: the backbone's forward + backward over 32 images in training mode, A/B as above; also
  the ``small`` profile's ``regnetx_002`` at 64 px (its default keeps B);
* ``decode-steps``: 60 beam-3 steps of 16 studies for ``r2gencmn`` and ``mcsam``: with the token table (A,
  :mod:`rrgbench.token_table`) against the memory queried per hypothesis and step (B), and against the
  memory replaced by the identity (``memory/identity``: what the memory adds to decoding);
* ``decode``: the whole beam-3 decode of 16 studies (images encoded inside) with the memory (A) and with it
  replaced by the identity (B): issue 18's "decoding with memory at most 10% slower than without".
* ``image-side``: ``prepare`` of 16 studies (the CNN, the memory's visual pass, the context encoder) without
  autograd (A, as :func:`rrgbench.decode.generate` runs it) and with autograd on (B: what the validation and
  test decodes did before ``generate`` turned it off).

Run: ``python -m pytest benchmarks/test_bench_ab.py --benchmark-only --benchmark-json FILE`` (1 torch thread
and ``nice`` on a shared machine). Without ``--benchmark-only`` the plain tests check, at the tiny size, that
A and B compute the same thing (features and gradients to float rounding, identical tokens).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
import torch
from benchutil import fastest, ratio, record_median, record_seconds
from reference_decoding import NoEos
from rrgbench_builtins.encoders import create_backbone
from test_bench_paper_size import BOS, EOS, PAPER, TINY, Size, Workload, build_workload

from rrgbench.decode import beam_search, generate
from rrgbench.run.efficiency import memory_replaced_by_identity

IMAGES = 32  # 16 studies x 2 views
BACKBONES = {"resnet101": 224, "resnet50": 224, "regnetx_002": 64}


class Timed:
    """Variant B, called and timed by hand before each of A's rounds (pytest-benchmark's ``setup``)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn, self.seconds = fn, []

    def __call__(self) -> None:
        start = time.perf_counter()
        self.fn()
        self.seconds.append(time.perf_counter() - start)


def run_ab(benchmark: Any, key: str, a: Callable[[], Any], b: Callable[[], Any], b_name: str, rounds: int,
           **info: Any) -> Any:
    """Time ``a`` with ``b`` interleaved; record both and the ratios ``b / a`` under ``key`` (one key per test:
    ``a`` is timed again next to every ``b``)."""
    other = Timed(b)
    out = benchmark.pedantic(a, setup=other, rounds=rounds, warmup_rounds=1)
    b_key = f"{key}/{b_name}"
    record_median(key, benchmark)
    record_seconds(b_key, other.seconds[1:])
    stats = benchmark.stats.stats
    b_median, b_min = statistics.median(other.seconds[1:]), min(other.seconds[1:])
    benchmark.extra_info.update({**info, "b": b_name, "b_median_s": b_median, "b_min_s": b_min,
                                 "b_over_a": b_median / stats.median, "b_over_a_fastest": b_min / stats.min,
                                 "threads": torch.get_num_threads(), "loadavg_1min_after": _loadavg()})
    ratio(f"{key}: {b_name} / A (medians)", b_key, key)
    ratio(f"{key}: {b_name} / A (fastest rounds)", fastest(b_key), fastest(key))
    return out


def _loadavg() -> float:
    with open("/proc/loadavg", encoding="ascii") as handle:
        return float(handle.read().split()[0])


# ---------------------------------------------------------------------------------- the variants


def backbones(name: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same randomly initialised backbone twice: in channels_last (A) and in the default layout (B)."""
    torch.manual_seed(0)
    plain = create_backbone(name)
    fast = create_backbone(name)
    fast.load_state_dict(plain.state_dict())
    return fast.to(memory_format=torch.channels_last), plain


def cnn_pass(backbone: torch.nn.Module, images: torch.Tensor, train: bool) -> torch.Tensor:
    """Forward (and backward in training mode) of ``images`` in the backbone's own memory format."""
    weight = next(p for p in backbone.parameters() if p.dim() == 4)
    layout = torch.channels_last if not weight.is_contiguous() else torch.contiguous_format
    images = images.contiguous(memory_format=layout)
    backbone.train(train)
    with nullcontext() if train else torch.no_grad():
        maps = backbone.forward_features(images)
    if train:
        backbone.zero_grad(set_to_none=True)
        maps.float().square().mean().backward()
    return maps.detach()


@contextmanager
def without_table(model: Any) -> Iterator[None]:
    """The model with its token table switched off (every step queries the memory), restored on exit."""
    model.token_table_enabled = False
    try:
        yield
    finally:
        model.token_table_enabled = True


def beam_steps(work: Workload, encoded: dict[str, torch.Tensor],
               context: Callable[[Any], Any] = lambda model: nullcontext()) -> list[list[int]]:
    """60 beam steps (``eos`` masked) inside ``context(model)``."""
    with torch.no_grad(), context(work.model):
        return beam_search(NoEos(work.model, EOS), encoded, work.beam, work.max_len, BOS, EOS)


def full_decode(work: Workload, context: Callable[[Any], Any] = lambda model: nullcontext()) -> list[list[int]]:
    """The whole decode (images encoded inside) inside ``context(model)``."""
    with torch.no_grad(), context(work.model):
        return generate(NoEos(work.model, EOS), work.images, "beam", work.beam, work.max_len, BOS, EOS)


def decode_workload(registry: Any, recipe: str, size: Size) -> tuple[Workload, dict[str, torch.Tensor]]:
    work = build_workload(registry, recipe, size)
    work.model.eval()
    with torch.no_grad():
        return work, work.model.prepare(work.images)


# ---------------------------------------------------------------------------------- benchmarks (paper size)


@pytest.mark.parametrize("name", ["resnet101", "resnet50"])
def test_cnn_eval(benchmark, name):
    fast, plain = backbones(name)
    images = torch.randn(IMAGES, 3, BACKBONES[name], BACKBONES[name])
    run_ab(benchmark, f"cnn-eval/{name}", lambda: cnn_pass(fast, images, False),
           lambda: cnn_pass(plain, images, False), "contiguous", rounds=3, backbone=name, images=IMAGES)


@pytest.mark.parametrize("name", ["resnet101", "resnet50", "regnetx_002"])
def test_cnn_train(benchmark, name):
    fast, plain = backbones(name)
    images = torch.randn(IMAGES, 3, BACKBONES[name], BACKBONES[name])
    rounds = 10 if name == "regnetx_002" else 2
    run_ab(benchmark, f"cnn-train/{name}", lambda: cnn_pass(fast, images, True),
           lambda: cnn_pass(plain, images, True), "contiguous", rounds=rounds, backbone=name, images=IMAGES)


@pytest.mark.parametrize("recipe", ["r2gencmn", "mcsam"])
@pytest.mark.parametrize("other", ["no-table", "identity"])
def test_decode_steps(benchmark, registry, recipe, other):
    work, encoded = decode_workload(registry, recipe, PAPER)
    context = without_table if other == "no-table" else memory_replaced_by_identity
    run_ab(benchmark, f"decode-steps/{recipe}/vs-{other}", lambda: beam_steps(work, encoded),
           lambda: beam_steps(work, encoded, context), other, rounds=5, recipe=recipe, steps=work.max_len)


@pytest.mark.parametrize("recipe", ["r2gencmn", "mcsam"])
def test_decode(benchmark, registry, recipe):
    work = build_workload(registry, recipe, PAPER)
    work.model.eval()
    run_ab(benchmark, f"decode/{recipe}", lambda: full_decode(work),
           lambda: full_decode(work, memory_replaced_by_identity), "identity", rounds=3, recipe=recipe,
           steps=work.max_len)


def prepare(work: Workload, grad: bool) -> dict[str, torch.Tensor]:
    with torch.set_grad_enabled(grad):
        return work.model.prepare(work.images)


def test_image_side(benchmark, registry):
    work = build_workload(registry, "r2gencmn", PAPER)
    work.model.eval()
    run_ab(benchmark, "image-side/r2gencmn", lambda: prepare(work, False), lambda: prepare(work, True), "autograd",
           rounds=3, recipe="r2gencmn")


# ---------------------------------------------------------------------------------- test mode (tiny size)


@pytest.mark.parametrize("name", ["resnet18", "regnetx_002"])
def test_cnn_variants_compute_the_same(name):
    fast, plain = backbones(name)
    images = torch.randn(4, 3, 64, 64)
    for train in (False, True):
        torch.testing.assert_close(cnn_pass(fast, images, train), cnn_pass(plain, images, train), atol=1e-5,
                                   rtol=1e-4)
    grads = [(a.grad, b.grad) for a, b in zip(fast.parameters(), plain.parameters(), strict=True)]
    assert all(a is not None for a, _ in grads)
    for a, b in grads:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("recipe", ["r2gencmn", "mcsam"])
def test_decode_variants_run_the_same_workload(registry, recipe):
    work, encoded = decode_workload(registry, recipe, TINY)
    assert work.model.uses_token_table() is False  # autograd is on here; the decoders switch it off
    with torch.no_grad():
        assert work.model.uses_token_table()
    with_table = beam_steps(work, encoded)
    assert beam_steps(work, encoded, without_table) == with_table
    assert beam_steps(work, encoded, without_table) == with_table  # each call enters its own context
    assert [len(row) for row in beam_steps(work, encoded, memory_replaced_by_identity)] == [6, 6]
    assert [len(row) for row in full_decode(work)] == [6, 6]
    assert [len(row) for row in full_decode(work, memory_replaced_by_identity)] == [6, 6]
