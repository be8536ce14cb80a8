"""Memory retrieval cost against the memory size N_m, next to the no-memory path.

The memory components are built through the plugin registry exactly as a recipe builds them
(``cmn``: R2GenCMN's shared memory; ``clinical-memory``: MCSAM's, the same retrieval over an
OT-initialised matrix; ``none``: the identity used by the no-memory variants). Two query shapes:

* ``visual``: one forward pass over the visual tokens, batch 16 x 49 tokens x d 512 (a 7x7 ResNet
  feature map at 224 px), top-k 32, 8 heads: the retrieval work of a training or prefill step;
* ``step``: the word embedding of one decoding step under beam search, (16 x 3 beams) x 1 token:
  what the memory adds to every generated token.

The time each adds to the ``none`` path (an identity, microseconds) is printed at the end of the session
(``retrieval/...``, milliseconds per call). Beware: ``step`` costs about as much as ``visual`` although it
has 16x fewer queries, because every call re-projects the whole memory (``key(M)``, ``value(M)``) and the
broadcast ``matmul`` copies the projected memory once per batch element.
"""

from __future__ import annotations

import pytest
import torch
from benchutil import added_ms, record_median

from rrgbench.extension.components import BuildContext
from rrgbench.extension.options import validate

SIZES = (512, 2048, 8192, 65536)
MEMORIES = ("cmn", "clinical-memory")
SHAPES = {"visual": (16, 49), "step": (48, 1)}
D_MODEL, TOPK = 512, 32
CONTEXT = BuildContext(d_model=D_MODEL, vocab_size=1000, pad_id=0, bos_id=1, eos_id=2, max_len=60, n_views=1,
                       image_size=224)


def build_memory(registry, name: str, size: int) -> torch.nn.Module:
    entry = registry.get("memory", name)
    values = {"size": size, "topk": TOPK} if name != "none" else {}
    if name == "clinical-memory":
        values["init"] = "random"  # the OT initialisation is benchmarked on its own (test_bench_ot.py)
    options = validate(entry.options, values, f"memory '{name}'")
    torch.manual_seed(0)
    return entry.load()(options, CONTEXT).eval()


def rounds_for(size: int) -> int:
    return 2 if size >= 65536 else 5


@pytest.mark.parametrize("shape", list(SHAPES))
def test_no_memory_path(benchmark, registry, shape, torch_threads):
    memory = build_memory(registry, "none", 0)
    queries = torch.randn(*SHAPES[shape], D_MODEL)
    with torch.no_grad():
        out = benchmark.pedantic(memory, args=(queries, "visual"), rounds=20, warmup_rounds=2)
    assert out.consolidated is queries
    benchmark.extra_info.update({"memory": "none", "shape": list(queries.shape), "threads": torch_threads})
    record_median(f"none/{shape}", benchmark)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", MEMORIES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_memory_retrieval(benchmark, registry, name, size, shape, torch_threads):
    memory = build_memory(registry, name, size)
    queries = torch.randn(*SHAPES[shape], D_MODEL)
    modality = "visual" if shape == "visual" else "text"
    with torch.no_grad():
        out = benchmark.pedantic(memory, args=(queries, modality), rounds=rounds_for(size), warmup_rounds=1)
    assert out.consolidated.shape == queries.shape and out.indices.shape[-1] == TOPK
    benchmark.extra_info.update({"memory": name, "memory_size": size, "topk": TOPK, "d_model": D_MODEL,
                                 "shape": list(queries.shape), "threads": torch_threads})
    key = f"{name}/{shape}/{size}"
    record_median(key, benchmark)
    added_ms(f"retrieval/{shape}: {name} N_m={size}, added to the no-memory path (ms per call)", key,
             f"none/{shape}")


@pytest.mark.parametrize("name", MEMORIES)
def test_retrieval_keeps_topk_slots(registry, name):
    """Sanity of the benchmarked call: each query reads exactly top-k distinct slots per head."""
    memory = build_memory(registry, name, 512)
    with torch.no_grad():
        out = memory(torch.randn(2, 5, D_MODEL), "visual")
    assert out.indices.shape == (2, memory.heads, 5, TOPK)
    assert bool((out.indices.sort(-1).values.diff(dim=-1) > 0).all())
