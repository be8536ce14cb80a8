"""Memory retrieval cost against the memory size N_m, next to its floor: the score product alone.

The memory components are built through the plugin registry exactly as a recipe builds them
(``cmn``: R2GenCMN's shared memory; ``clinical-memory``: MCSAM's, the same retrieval over an
OT-initialised matrix; ``none``: the identity used by the no-memory variants). Two query shapes:

* ``visual``: one forward pass over the visual tokens, batch 16 x 49 tokens x d 512 (a 7x7 ResNet
  feature map at 224 px), top-k 32, 8 heads: the retrieval work of a training or prefill step;
* ``step``: the word embedding of one decoding step under beam search, (16 x 3 beams) x 1 token:
  what the memory adds to every generated token.

Every retrieval round is preceded by one timed run of the score product alone at the same shape
(``bmm`` of the queries [8, n, 64] with the slot keys [8, N_m, 64]: the multiply-adds no exact retrieval
can skip), so both come from the same stretch of machine load. The session ends by printing, per shape, memory and
N_m, the retrieval's time over that product's time (``retrieval/... / score bmm alone``: ratio of the
medians, and of the fastest rounds, which a busy machine disturbs least: there a call of a few
milliseconds is preempted more often than one of one millisecond), also stored in the saved JSON under
``rrgbench_ratios`` and in each benchmark's ``extra_info``, and the milliseconds it adds to the ``none``
path. ``test_topk_selection`` times the exact top-k of a beam step's scores with
``torch.topk`` and with the two-stage selection the memory uses on CPU; ``test_dense_reference`` times
the former dense retrieval (``reference_retrieval.py``) at N_m 512 and 2,048 for the speed-up.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from benchutil import added_ms, fastest, ratio, record_median, record_seconds
from reference_retrieval import dense_respond
from rrgbench_cmn.selection import topk_rows

from rrgbench.extension.components import BuildContext
from rrgbench.extension.options import validate

SIZES = (512, 2048, 8192, 65536)
MEMORIES = ("cmn", "clinical-memory")
SHAPES = {"visual": (16, 49), "step": (48, 1)}
D_MODEL, TOPK, HEADS = 512, 32, 8
CONTEXT = BuildContext(d_model=D_MODEL, vocab_size=1000, pad_id=0, bos_id=1, eos_id=2, max_len=60, n_views=1,
                       image_size=224)


def build_memory(registry, name: str, size: int) -> torch.nn.Module:
    entry = registry.get("memory", name)
    values = {"size": size, "topk": TOPK, "heads": HEADS} if name != "none" else {}
    if name == "clinical-memory":
        values["init"] = "random"  # the OT initialisation is benchmarked on its own (test_bench_ot.py)
    options = validate(entry.options, values, f"memory '{name}'")
    torch.manual_seed(0)
    return entry.load()(options, CONTEXT).eval()


def rounds_for(size: int) -> int:
    return 3 if size >= 65536 else 20 if size >= 8192 else 50


class ScoreProduct:
    """The score ``bmm`` alone at a retrieval's shape, timed by hand between the benchmark's rounds."""

    def __init__(self, queries: int, size: int) -> None:
        d_head = D_MODEL // HEADS
        self.queries = torch.randn(HEADS, queries, d_head)
        self.keys_t = torch.randn(HEADS, size, d_head).transpose(1, 2)
        self.seconds: list[float] = []

    def __call__(self) -> None:
        start = time.perf_counter()
        torch.bmm(self.queries, self.keys_t)
        self.seconds.append(time.perf_counter() - start)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_no_memory_path(benchmark, registry, shape, torch_threads):
    memory = build_memory(registry, "none", 0)
    queries = torch.randn(*SHAPES[shape], D_MODEL)
    with torch.no_grad():
        out = benchmark.pedantic(memory, args=(queries, "visual"), rounds=20, warmup_rounds=2)
    assert out.consolidated is queries
    benchmark.extra_info.update({"memory": "none", "shape": list(queries.shape), "threads": torch_threads})
    record_median(f"none/{shape}", benchmark)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MEMORIES)
def test_memory_retrieval(benchmark, registry, name, size, shape, torch_threads):
    memory = build_memory(registry, name, size)
    queries = torch.randn(*SHAPES[shape], D_MODEL)
    modality = "visual" if shape == "visual" else "text"
    product, warmup = ScoreProduct(queries.shape[0] * queries.shape[1], size), 1
    with torch.no_grad():
        out = benchmark.pedantic(memory, args=(queries, modality), setup=product, rounds=rounds_for(size),
                                 warmup_rounds=warmup)
    assert out.consolidated.shape == queries.shape and out.indices.shape[-1] == TOPK
    key, bmm_key = f"{name}/{shape}/{size}", f"bmm/{name}/{shape}/{size}"
    record_median(key, benchmark)
    record_seconds(bmm_key, product.seconds[warmup:])
    bmm_median, bmm_min = statistics.median(product.seconds[warmup:]), min(product.seconds[warmup:])
    stats = benchmark.stats.stats
    benchmark.extra_info.update({"memory": name, "memory_size": size, "topk": TOPK, "heads": HEADS,
                                 "d_model": D_MODEL, "shape": list(queries.shape), "threads": torch_threads,
                                 "score_bmm_median_s": bmm_median, "score_bmm_min_s": bmm_min,
                                 "ratio_to_score_bmm": stats.median / bmm_median,
                                 "ratio_to_score_bmm_fastest": stats.min / bmm_min})
    ratio(f"retrieval/{shape}: {name} N_m={size}, time / score bmm alone (medians)", key, bmm_key)
    ratio(f"retrieval/{shape}: {name} N_m={size}, time / score bmm alone (fastest rounds)", fastest(key),
          fastest(bmm_key))
    added_ms(f"retrieval/{shape}: {name} N_m={size}, added to the no-memory path (ms per call)", key,
             f"none/{shape}")


@pytest.mark.parametrize("method", ["torch.topk", "two-stage"])
@pytest.mark.parametrize("size", SIZES)
def test_topk_selection(benchmark, method, size, torch_threads):
    """The top-32 of a beam step's scores [8 heads x 48 queries, N_m]: ``torch.topk`` and :func:`topk_rows`."""
    scores = torch.randn(HEADS * 48, size)
    select = (lambda s: s.topk(TOPK, dim=-1)) if method == "torch.topk" else (lambda s: topk_rows(s, TOPK))
    values, _ = benchmark.pedantic(select, args=(scores,), rounds=rounds_for(size) * 2, warmup_rounds=1)
    assert torch.equal(values, scores.topk(TOPK, dim=-1).values)
    benchmark.extra_info.update({"method": method, "memory_size": size, "rows": scores.shape[0], "topk": TOPK,
                                 "threads": torch_threads})
    record_median(f"topk/{method}/{size}", benchmark)
    ratio(f"top-k of a beam step's scores, N_m={size}: torch.topk / two-stage", f"topk/torch.topk/{size}",
          f"topk/two-stage/{size}")


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("size", (512, 2048))
def test_dense_reference(benchmark, registry, size, shape, torch_threads):
    """The former dense retrieval (broadcast matmul, [B, heads, L, N_m] weight matrix) on the same ``cmn`` memory."""
    memory = build_memory(registry, "cmn", size)
    queries = torch.randn(*SHAPES[shape], D_MODEL)
    with torch.no_grad():
        response, _, indices = benchmark.pedantic(dense_respond, args=(memory, queries), rounds=3, warmup_rounds=1)
    assert response.shape == queries.shape and indices.shape[-1] == TOPK
    benchmark.extra_info.update({"memory": "cmn (dense reference)", "memory_size": size,
                                 "shape": list(queries.shape), "threads": torch_threads})
    record_median(f"dense/{shape}/{size}", benchmark)
    ratio(f"retrieval/{shape}: cmn N_m={size}, speed-up over the former dense retrieval", f"dense/{shape}/{size}",
          f"cmn/{shape}/{size}")


@pytest.mark.parametrize("name", MEMORIES)
def test_retrieval_keeps_topk_slots(registry, name):
    """Sanity of the benchmarked call: each query reads exactly top-k distinct slots per head."""
    memory = build_memory(registry, name, 512)
    with torch.no_grad():
        out = memory(torch.randn(2, 5, D_MODEL), "visual")
    assert out.indices.shape == (2, memory.heads, 5, TOPK)
    assert bool((out.indices.sort(-1).values.diff(dim=-1) > 0).all())


def by_slot(indices: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept slots in index order with their weights (the order among nearly equal scores is rounding)."""
    order = indices.argsort(dim=-1)
    return indices.gather(-1, order), weights.gather(-1, order)


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", MEMORIES)
def test_retrieval_equals_the_dense_reference(registry, name, shape):
    """The benchmarked retrieval returns what the former dense one returned, at the paper's N_m and init.

    With R2GenCMN's init (std 1/D) the slots' scores lie close together, so the two products' rounding
    may order two kept slots differently; the kept sets, their weights and the responses agree.
    """
    memory = build_memory(registry, name, 2048)
    queries = torch.randn(*SHAPES[shape], D_MODEL)
    with torch.no_grad():
        out = memory(queries, "text")
        response, weights, indices = dense_respond(memory, queries)
    got_slots, got_weights = by_slot(out.indices, out.scores)
    want_slots, want_weights = by_slot(indices, weights)
    assert torch.equal(got_slots, want_slots)
    torch.testing.assert_close(got_weights, want_weights, atol=1e-7, rtol=0)
    torch.testing.assert_close(out.retrieved, response, atol=1e-7, rtol=0)
