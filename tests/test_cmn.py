"""The ``cmn`` memory (R2GenCMN): top-k retrieval per head, X + R(X), gradients, padding, the recipe.

The retrieval is also compared with the former dense implementation (``benchmarks/reference_retrieval.py``):
identical outputs and gradients on the plain and two-stage top-k paths, with text padding, across query
blocks, through the decoding cache, and in training mode with dropout.
"""

from __future__ import annotations

import math

import pytest
import torch
from rrgbench_cmn import selection
from rrgbench_cmn.memory import CrossModalMemory
from rrgbench_cmn.schemas import CMNMemoryOptions

from rrgbench.config import resolve_config
from rrgbench.errors import ConfigError
from rrgbench.extension.components import BuildContext
from rrgbench.extension.options import as_dict
from rrgbench.extension.plugins import registry
from rrgbench.model import build_model
from rrgbench.run.setup import make_optimizer

D, HEADS, SIZE, TOPK = 32, 4, 20, 5


def context(d_model: int = D) -> BuildContext:
    return BuildContext(d_model=d_model, vocab_size=40, pad_id=0, bos_id=1, eos_id=2, max_len=20, n_views=1,
                        image_size=64)


@pytest.fixture
def memory() -> CrossModalMemory:
    torch.manual_seed(0)
    mem = CrossModalMemory(CMNMemoryOptions(size=SIZE, topk=TOPK, heads=HEADS, dropout=0.0), context())
    with torch.no_grad():
        mem.matrix.normal_()  # spread the slots so that the top-k is well separated
    return mem.eval()


def manual_response(mem: CrossModalMemory, queries: torch.Tensor) -> torch.Tensor:
    """R(x) by the paper's recipe, written independently: gather the top-k slots per head, softmax, sum."""
    b, n, _ = queries.shape
    d = D // HEADS
    q = mem.query(queries).view(b, n, HEADS, d)
    k = mem.key(mem.matrix).view(SIZE, HEADS, d)
    v = mem.value(mem.matrix).view(SIZE, HEADS, d)
    out = torch.zeros(b, n, HEADS, d)
    for i in range(b):
        for t in range(n):
            for h in range(HEADS):
                scores = k[:, h] @ q[i, t, h] / math.sqrt(d)
                top, idx = scores.topk(TOPK)
                out[i, t, h] = torch.softmax(top, 0) @ v[idx, h]
    return mem.out(out.view(b, n, D))


def test_retrieval_keeps_exactly_the_topk_slots_per_head(memory):
    queries = torch.randn(3, 7, D)
    out = memory(queries, "visual")
    assert out.indices.shape == (3, HEADS, 7, TOPK) and out.scores.shape == (3, HEADS, 7, TOPK)
    flat = out.indices.reshape(-1, TOPK)
    assert all(len(set(row.tolist())) == TOPK for row in flat)  # distinct slots
    similarity = memory.similarity(queries)
    chosen = torch.zeros_like(similarity, dtype=torch.bool).scatter(-1, out.indices, True)
    lowest_kept = similarity.masked_fill(~chosen, float("inf")).min(-1).values
    highest_dropped = similarity.masked_fill(chosen, float("-inf")).max(-1).values
    assert bool((lowest_kept > highest_dropped).all())
    assert torch.allclose(out.scores.sum(-1), torch.ones(3, HEADS, 7))
    assert torch.allclose(out.scores, torch.softmax(similarity.gather(-1, out.indices), -1), atol=1e-6)


def test_consolidation_is_features_plus_response(memory):
    queries = torch.randn(2, 5, D)
    out = memory(queries, "visual")
    assert torch.allclose(out.consolidated, queries + out.retrieved)
    assert torch.allclose(out.retrieved, manual_response(memory, queries), atol=1e-5)


def test_both_modalities_share_one_memory(memory):
    assert memory.applies_to == ("visual", "text")
    queries = torch.randn(2, 4, D)
    assert torch.equal(memory(queries, "visual").consolidated, memory(queries, "text").consolidated)


def test_gradients_reach_the_memory_matrix():
    torch.manual_seed(0)
    mem = CrossModalMemory(CMNMemoryOptions(size=SIZE, topk=TOPK, heads=HEADS), context())
    out = mem(torch.randn(2, 6, D), "text")
    (out.consolidated * torch.randn_like(out.consolidated)).sum().backward()
    assert mem.matrix.grad is not None and float(mem.matrix.grad.abs().sum()) > 0
    assert float(mem.matrix.grad.abs().sum(1).gt(0).sum()) > TOPK  # several slots receive gradient


def test_padded_text_positions_do_not_affect_real_ones(memory):
    queries = torch.randn(2, 6, D)
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    out = memory(queries, "text", mask=mask)
    changed = queries.clone()
    changed[1, 3:] = torch.randn(3, D) * 100
    again = memory(changed, "text", mask=mask)
    assert torch.allclose(out.consolidated[mask], again.consolidated[mask])
    assert torch.equal(again.consolidated[1, 3:], changed[1, 3:])  # padding gets no response
    assert torch.equal(out.mask, mask)


def test_cached_slot_projections_follow_changes_to_the_memory(memory):
    queries = torch.randn(2, 3, D)
    with torch.no_grad():
        first = memory(queries, "text").consolidated
        assert torch.equal(memory(queries, "text").consolidated, first)
        memory.load_matrix(memory.matrix.flip(0) * 2)
        memory.value.bias.add_(1.0)
        second = memory(queries, "text").consolidated
    recomputed = memory(queries, "text").consolidated.detach()  # autograd on: nothing cached
    assert not torch.allclose(first, second) and torch.allclose(second, recomputed, atol=1e-6)


def test_random_init_follows_r2gencmn():
    torch.manual_seed(0)
    mem = CrossModalMemory(CMNMemoryOptions(size=2048, topk=32, heads=8), context(512))
    assert mem.matrix.shape == (2048, 512)
    assert abs(float(mem.matrix.detach().std()) - 1 / 512) < 1e-4
    assert abs(float(mem.matrix.detach().mean())) < 1e-4


def test_impossible_shapes_are_config_errors():
    with pytest.raises(ConfigError, match=r"memory\.topk"):
        CrossModalMemory(CMNMemoryOptions(size=8, topk=16, heads=4), context())
    with pytest.raises(ConfigError, match=r"memory\.heads"):
        CrossModalMemory(CMNMemoryOptions(size=8, topk=4, heads=5), context())


def test_r2gencmn_recipe_paper_settings_and_small_profile():
    reg = registry()
    paper = resolve_config(reg, "r2gencmn", "iu-xray")
    assert paper.components["memory"] == "cmn" and paper.components["alignment"] == "none"
    assert as_dict(paper.memory) == {"size": 2048, "topk": 32, "heads": 8, "dropout": 0.1}
    assert paper.sections["encoder"].backbone == "resnet101"
    train = paper.sections["train"]
    assert (train.lr_visual, train.lr, train.beta2, train.weight_decay) == (1e-4, 5e-4, 0.98, 5e-5)
    assert (train.amsgrad, train.step_size, train.gamma) == (True, 3, 0.8)
    assert paper.sections["decoder"].d_ff == 512 and paper.sections["decode"].beam_size == 3
    small = resolve_config(reg, "r2gencmn", "synthetic")
    assert (small.sections["memory"].size, small.sections["memory"].topk) == (256, 16)


def test_r2gencmn_model_trains_its_memory(tiny):
    reg = registry()
    overrides = {**tiny, "memory.size": 16, "memory.topk": 4, "memory.heads": 2}
    config = resolve_config(reg, "r2gencmn", "synthetic", overrides)
    torch.manual_seed(0)
    model = build_model(reg, config, context())
    ids = torch.tensor([[1, 5, 6, 7, 2, 0], [1, 8, 9, 2, 0, 0]])
    out = model(torch.randn(2, 1, 3, 64, 64), ids)
    out.loss.backward()
    assert set(out.terms) == {"gen"} and math.isfinite(out.loss.item())
    assert float(model.memory.matrix.grad.abs().sum()) > 0


def test_r2gencmn_recipe_uses_the_official_trainer_settings(tiny):
    """R2GenCMN's trainer steps Adam (eps 1e-9) on unclipped gradients."""
    reg = registry()
    train = resolve_config(reg, "r2gencmn", "iu-xray").sections["train"]
    assert (train.clip_value, train.clip_norm, train.eps) == (0.0, 0.0, 1e-9)
    model = build_model(reg, resolve_config(reg, "r2gencmn", "synthetic", tiny), context())
    optimizer = make_optimizer(model, train)
    assert {group["eps"] for group in optimizer.param_groups} == {1e-9}
    mcsam = resolve_config(reg, "mcsam", "iu-xray").sections["train"]  # MCSAM builds on R2GenCMN's trainer
    assert (mcsam.clip_value, mcsam.clip_norm, mcsam.eps) == (0.0, 0.0, 1e-9)
    assert resolve_config(reg, "transformer", "iu-xray").sections["train"].eps == 1e-8  # torch's default


# -- the fast retrieval against the former dense one ---------------------------------------------------
def reference_pair(size: int, topk: int, heads: int, d_model: int, dtype: torch.dtype,
                   dropout: float = 0.0) -> CrossModalMemory:
    torch.manual_seed(0)
    mem = CrossModalMemory(CMNMemoryOptions(size=size, topk=topk, heads=heads, dropout=dropout), context(d_model))
    with torch.no_grad():
        mem.matrix.normal_()
    return mem.to(dtype)


def assert_same_retrieval(out, expected, atol: float) -> None:
    assert torch.equal(out.indices, expected.indices)
    torch.testing.assert_close(out.scores, expected.scores, atol=atol, rtol=0)
    torch.testing.assert_close(out.consolidated, expected.consolidated, atol=atol, rtol=0)
    torch.testing.assert_close(out.retrieved, expected.retrieved, atol=atol, rtol=0)


SHAPES = [  # size, topk, heads, d_model: plain torch.topk; two-stage without and with a tail of N mod chunk
    (20, 5, 4, 32),
    (512, 8, 4, 32),
    (600, 8, 2, 16),
]


@pytest.mark.parametrize(("size", "topk", "heads", "d_model"), SHAPES)
@pytest.mark.parametrize("training", [False, True])
def test_outputs_and_gradients_equal_the_dense_retrieval(benchmark_module, size, topk, heads, d_model, training):
    reference = benchmark_module("reference_retrieval")
    mem = reference_pair(size, topk, heads, d_model, torch.float64, dropout=0.1).train(training)
    queries = torch.randn(3, 6, d_model, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] + [False] * 5])
    torch.manual_seed(1)
    out = mem(queries, "text", mask=mask)
    torch.manual_seed(1)  # the same dropout mask on the retrieval weights
    expected = reference.dense_forward(mem, queries, mask)
    assert_same_retrieval(out, expected, atol=1e-12)
    probe = torch.randn_like(queries)
    names, params = zip(*mem.named_parameters(), strict=True)
    grads = torch.autograd.grad((out.consolidated * probe).sum(), [queries, *params])
    expected_grads = torch.autograd.grad((expected.consolidated * probe).sum(), [queries, *params])
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert float(dict(zip(names, grads[1:], strict=True))["matrix"].abs().sum()) > 0


def test_float32_paper_shape_equals_the_dense_retrieval(benchmark_module):
    reference = benchmark_module("reference_retrieval")
    mem = reference_pair(2048, 32, 8, 512, torch.float32)
    queries = torch.randn(4, 3, 512, requires_grad=True)
    out, expected = mem(queries, "visual"), reference.dense_forward(mem, queries)
    assert_same_retrieval(out, expected, atol=1e-6)
    grad = torch.autograd.grad(out.consolidated.square().sum(), [queries, mem.matrix])
    want = torch.autograd.grad(expected.consolidated.square().sum(), [queries, mem.matrix])
    for got, ref in zip(grad, want, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)


def test_decoding_cache_and_query_blocks_equal_the_dense_retrieval(benchmark_module, monkeypatch):
    reference = benchmark_module("reference_retrieval")
    mem = reference_pair(600, 8, 2, 16, torch.float64).eval()
    monkeypatch.setattr(selection, "SCORE_BLOCK", 1)  # one query per block
    monkeypatch.setattr(selection, "MIN_BLOCK_ROWS", 1)
    steps = torch.randn(5, 6, 1, 16, dtype=torch.float64)  # five decoding steps of 6 hypotheses
    with torch.no_grad():
        for step in steps:
            assert_same_retrieval(mem(step, "text"), reference.dense_forward(mem, step), atol=1e-12)
        assert mem._slot_cache is not None  # the projected slots were reused
        mem.load_matrix(mem.matrix.flip(0))
        assert_same_retrieval(mem(steps[0], "text"), reference.dense_forward(mem, steps[0]), atol=1e-12)


@pytest.mark.parametrize(("rows", "length", "k"), [(7, 512, 32), (5, 600, 8), (3, 70, 4), (4, 10, 3)])
def test_topk_rows_equals_torch_topk(rows, length, k):
    scores = torch.randn(rows, length, generator=torch.Generator().manual_seed(length))
    values, indices = selection.topk_rows(scores, k)
    expected = scores.topk(k, dim=-1)
    assert torch.equal(values, expected.values) and torch.equal(indices, expected.indices)


def test_topk_rows_with_ties_returns_a_valid_topk():
    scores = torch.randint(0, 6, (6, 640), generator=torch.Generator().manual_seed(0)).float()
    values, indices = selection.topk_rows(scores, 16)
    assert torch.equal(values, scores.topk(16, dim=-1).values)
    assert torch.equal(scores.gather(1, indices), values)
    assert bool((indices.sort(-1).values.diff(dim=-1) > 0).all())  # distinct slots
