"""MCSAM: Sinkhorn, the OT memory init, SAM, the six recipes and their ablation switches."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from rrgbench_mcsam.alignment import SemanticAlignment
from rrgbench_mcsam.memory import ClinicalMemory, ot_samples
from rrgbench_mcsam.ot import balanced_prototypes, marginal_errors, sinkhorn, usage_entropy
from rrgbench_mcsam.schemas import ClinicalMemoryOptions, SAMOptions

from rrgbench.cli import main as cli_main
from rrgbench.config import resolve_config
from rrgbench.extension.components import BuildContext, MemoryOutput, NoAlignment, TrainingSummary
from rrgbench.extension.plugins import registry
from rrgbench.model import ReportGenerator, build_model
from rrgbench.run.setup import make_optimizer

D = 32
CONTEXT = BuildContext(d_model=D, vocab_size=40, pad_id=0, bos_id=1, eos_id=2, max_len=20, n_views=1, image_size=64)
MEMORY = {"memory.size": 16, "memory.topk": 4, "memory.heads": 2, "memory.ot_iters": 50, "memory.ot_rounds": 3}
IDS = torch.tensor([[1, 5, 6, 7, 8, 2], [1, 9, 10, 2, 0, 0], [1, 11, 5, 6, 2, 0]])


def build(name: str, tiny: dict, **extra: object) -> ReportGenerator:
    reg = registry()
    overrides = {**tiny, **extra}
    if reg.get("model", name).extra["memory"] != "none":
        overrides = {**MEMORY, **overrides}
    torch.manual_seed(0)
    return build_model(reg, resolve_config(reg, name, "synthetic", overrides), CONTEXT)


def images(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def clustered_summary(n: int = 240, clusters: int = 4) -> TrainingSummary:
    """Features from a few tight clusters, as freshly initialised encoders produce (anisotropic)."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(clusters, D, generator=gen) * 3
    labels = torch.arange(n) % clusters
    visual = centres[labels] + 0.3 * torch.randn(n, D, generator=gen)
    text = centres.flip(0)[labels] + 0.3 * torch.randn(n, D, generator=gen) + 5.0
    return TrainingSummary(visual, text, IDS[labels % 3], [str(i) for i in range(n)])


# -- optimal transport ----------------------------------------------------------------------------
def test_sinkhorn_plan_has_the_requested_marginals():
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(30, 20, generator=gen, dtype=torch.float64)
    a = torch.rand(30, generator=gen, dtype=torch.float64) + 0.1
    b = torch.rand(20, generator=gen, dtype=torch.float64) + 0.1
    a, b = a / a.sum(), b / b.sum()
    plan = sinkhorn(cost, a, b, epsilon=0.05, iters=2000)
    assert max(marginal_errors(plan, a, b)) < 1e-4
    assert torch.allclose(plan.sum(1), a, atol=1e-4) and torch.allclose(plan.sum(0), b, atol=1e-4)
    tiny_eps = sinkhorn(cost.float(), a.float(), b.float(), epsilon=1e-3, iters=50)  # log domain: no underflow
    assert bool(torch.isfinite(tiny_eps).all()) and abs(float(tiny_eps.sum()) - 1) < 1e-3


def test_sinkhorn_rejects_bad_problems():
    with pytest.raises(ValueError, match="marginals"):
        sinkhorn(torch.rand(3, 2), torch.full((3,), 1 / 3), torch.tensor([0.5, 0.6]), 0.1, 10)


def test_balanced_prototypes_are_used_evenly():
    summary = clustered_summary()
    samples = ot_samples(summary, "visual+text")
    result = balanced_prototypes(samples, 16, 0.05, 200, 5, torch.Generator().manual_seed(0), tol=1e-5)
    assert result.prototypes.shape == (16, D) and result.column_error < 1e-4
    random = torch.randn(16, D, generator=torch.Generator().manual_seed(3))
    assert usage_entropy(samples, result.prototypes) > usage_entropy(samples, random) + 0.1


def test_ot_init_spreads_memory_usage_more_evenly_than_random_init():
    summary = clustered_summary()
    options = dict(size=16, topk=4, heads=2, ot_iters=200, ot_rounds=5)
    torch.manual_seed(0)
    ot = ClinicalMemory(ClinicalMemoryOptions(**options), CONTEXT)
    random = ClinicalMemory(ClinicalMemoryOptions(**options, init="random"), CONTEXT)
    assert ot.wants_initialization() and not random.wants_initialization()
    report = ot.initialize(summary)
    samples = ot_samples(summary, "visual+text")
    assert usage_entropy(samples, ot.matrix.detach()) > usage_entropy(samples, random.matrix.detach()) + 0.1
    assert report["usage_entropy"] > report["usage_entropy_random"] + 0.1
    assert report["marginal_error_prototypes"] < 1e-4 and report["sinkhorn_iterations"] > 0
    assert report["seconds"] >= 0 and report["samples"] == 2 * len(summary.study_ids)
    rms = float(ot.matrix.detach().pow(2).mean().sqrt())
    assert math.isclose(rms, 1 / D, rel_tol=1e-3)  # same scale as the random init


def test_ot_init_with_fewer_samples_than_slots_gives_distinct_slots():
    summary = TrainingSummary(torch.randn(3, D), torch.randn(3, D), IDS, ["a", "b", "c"])
    mem = ClinicalMemory(ClinicalMemoryOptions(size=16, topk=4, heads=2, ot_features="visual"), CONTEXT)
    report = mem.initialize(summary)
    matrix = mem.matrix.detach()
    assert bool(torch.isfinite(matrix).all()) and report["samples"] == 3
    distances = torch.cdist(matrix, matrix) + torch.eye(16)
    assert float(distances.min()) > 0


@pytest.mark.parametrize("frozen", [False, True])
def test_clinical_memory_retrieval_equals_the_dense_reference(benchmark_module, frozen):
    """The OT-initialised memory reads through the inherited fast retrieval: outputs and gradients as before."""
    reference = benchmark_module("reference_retrieval")
    torch.manual_seed(0)
    options = ClinicalMemoryOptions(size=600, topk=8, heads=2, dropout=0.0, ot_iters=50, ot_rounds=2, frozen=frozen)
    mem = ClinicalMemory(options, CONTEXT).double()
    mem.initialize(clustered_summary())
    queries = torch.randn(3, 5, D, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    out, expected = mem(queries, "text", mask=mask), reference.dense_forward(mem, queries, mask)
    assert torch.equal(out.indices, expected.indices)
    torch.testing.assert_close(out.consolidated, expected.consolidated, atol=1e-12, rtol=0)
    params = [queries, *(p for p in mem.parameters() if p.requires_grad)]
    grads = torch.autograd.grad(out.consolidated.square().sum(), params)
    for got, want in zip(grads, torch.autograd.grad(expected.consolidated.square().sum(), params), strict=True):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert len(params) == (9 if frozen else 10)  # queries, M (unless frozen), 4 projections x (weight, bias)


# -- the semantic alignment module ---------------------------------------------------------------
def test_sam_aligns_retrieved_knowledge_and_respects_padding():
    torch.manual_seed(0)
    sam = SemanticAlignment(SAMOptions(proj_dim=8), CONTEXT)
    assert math.isclose(float(sam.temperature.detach()), 0.07, rel_tol=1e-5)
    visual = MemoryOutput(consolidated=torch.randn(3, 5, D), retrieved=torch.randn(3, 5, D))
    mask = IDS != 0
    retrieved = torch.randn(3, 6, D)
    text = MemoryOutput(consolidated=torch.randn(3, 6, D), retrieved=retrieved, mask=mask)
    out = sam(visual, text)
    assert out.semantic.shape == (3, 1, D) and out.loss.dim() == 0 and out.loss.item() > 0
    padded = retrieved.clone()
    padded[~mask] = 1e3
    again = sam(visual, MemoryOutput(consolidated=text.consolidated, retrieved=padded, mask=mask))
    assert torch.allclose(out.loss, again.loss)
    inference = sam(visual, None)
    assert inference.loss is None and torch.allclose(inference.semantic, out.semantic)


def test_sam_falls_back_to_consolidated_features_without_memory():
    torch.manual_seed(0)
    sam = SemanticAlignment(SAMOptions(proj_dim=8, semantic_tokens=2), CONTEXT)
    visual = MemoryOutput(consolidated=torch.randn(3, 5, D))
    text = MemoryOutput(consolidated=torch.randn(3, 6, D), mask=IDS != 0)
    out = sam(visual, text)
    assert out.semantic.shape == (3, 2, D) and math.isfinite(out.loss.item())
    out.loss.backward()
    assert sam.log_temperature.grad is not None


def test_sam_options_source_and_batch_norm_heads():
    torch.manual_seed(0)
    visual = MemoryOutput(consolidated=torch.randn(3, 5, D), retrieved=torch.zeros(3, 5, D))
    text = MemoryOutput(consolidated=torch.randn(3, 6, D), retrieved=torch.zeros(3, 6, D), mask=IDS != 0)
    retrieved = SemanticAlignment(SAMOptions(proj_dim=8), CONTEXT)
    consolidated = SemanticAlignment(SAMOptions(proj_dim=8, source="consolidated"), CONTEXT)
    consolidated.load_state_dict(retrieved.state_dict())
    assert math.isclose(retrieved(visual, text).loss.item(), math.log(3), rel_tol=1e-5)  # constant input
    assert not math.isclose(consolidated(visual, text).loss.item(), math.log(3), rel_tol=1e-3)
    batch_norm = SemanticAlignment(SAMOptions(proj_dim=8, head_norm="batch"), CONTEXT).train()
    single = batch_norm(MemoryOutput(consolidated=torch.randn(1, 5, D)), None)  # one study: running stats
    assert single.semantic.shape == (1, 1, D)


# -- the recipes ---------------------------------------------------------------------------------
def test_full_model_logs_gen_and_align_separately(tiny):
    model = build("mcsam", tiny)
    out = model(images(), IDS)
    assert set(out.terms) == {"gen", "align"}
    assert torch.allclose(out.loss, out.terms["gen"] + out.terms["align"])
    assert isinstance(model.memory, ClinicalMemory) and model.memory.wants_initialization()


def test_no_sam_ablation_has_no_align_term(tiny):
    model = build("mcsam-no-sam", tiny)
    assert isinstance(model.alignment, NoAlignment)
    assert set(model(images(), IDS).terms) == {"gen"}


def test_frozen_memory_stays_bit_identical_after_a_training_step(tiny):
    model = build("mcsam-frozen-memory", tiny)
    batch = SimpleNamespace(images=images(), target_ids=IDS, ids=["a", "b", "c"])
    for component in model.components_wanting_initialization():
        component.initialize(model.summarize([batch]))
    before = model.memory.matrix.detach().clone()
    key_before = model.memory.key.weight.detach().clone()
    optimizer = make_optimizer(model, resolve_config(registry(), "mcsam", "synthetic", tiny).sections["train"])
    model.train()
    model(batch.images, batch.target_ids).loss.backward()
    optimizer.step()
    assert not model.memory.matrix.requires_grad
    assert torch.equal(model.memory.matrix, before)
    assert not torch.equal(model.memory.key.weight, key_before)  # its projections still learn


def test_prompt_count_sets_the_decoder_attention_length(tiny):
    assert build("mcsam", tiny).decoder.attention_length(7) == 7 + 8  # small profile: 8 prompts
    assert build("mcsam-no-prompts", tiny).decoder.attention_length(7) == 7
    assert build("mcsam", tiny, **{"decoder.n_prompts": 3}).decoder.attention_length(7) == 10


def test_incremental_decoding_matches_the_full_pass(tiny):
    model = build("mcsam", tiny).eval()
    imgs = images()
    with torch.no_grad():
        full = model(imgs, IDS).logits  # [B, T-1, vocab]
        encoded = model.prepare(imgs)
        cache = model.decoder.init_cache(encoded)
        for t in range(IDS.shape[1] - 1):
            logits, cache = model.step(encoded, IDS[:, t], cache)
            assert torch.allclose(logits, full[:, t], atol=1e-4), f"step {t}"


def test_no_memory_ablation_builds_and_keeps_prompts_and_sam(tiny):
    model = build("mcsam-no-memory", tiny)
    assert model.memory.applies_to == () and isinstance(model.alignment, SemanticAlignment)
    assert model.decoder.n_prompts == 8


def test_no_memory_ablation_still_trains_sam(tiny):
    assert set(build("mcsam-no-memory", tiny)(images(), IDS).terms) == {"gen", "align"}


def test_random_memory_ablation_skips_the_ot_init(tiny):
    assert not build("mcsam-random-memory", tiny).components_wanting_initialization()


def test_set_memory_size_reaches_the_built_model(tiny):
    model = build("mcsam", tiny, **{"memory.size": "24", "memory.init": "random"})
    assert model.memory.matrix.shape == (24, D)


def test_listing_shows_every_recipe_the_issue_asks_for(capsys):
    assert cli_main(["list", "models", "mcsam*"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ") and
              not line.startswith("   ")}
    assert listed == {"mcsam", "mcsam-no-memory", "mcsam-random-memory", "mcsam-frozen-memory", "mcsam-no-sam",
                      "mcsam-no-prompts"}
    for name in listed - {"mcsam"}:
        assert registry().get("model", name).extra["ablation_of"] == "mcsam"


def test_batch_norm_heads_separate_nearly_identical_studies():
    """A random encoder gives every chest image nearly the same pooled features: without batch norm in
    the heads InfoNCE sits at ln B with no gradient (what stalled MCSAM), with it the studies separate."""
    torch.manual_seed(0)
    base_v, base_t = torch.randn(1, 5, D), torch.randn(1, 6, D)
    visual = MemoryOutput(consolidated=base_v + 1e-4 * torch.randn(4, 5, D))
    text = MemoryOutput(consolidated=base_t + 1e-4 * torch.randn(4, 6, D), mask=torch.ones(4, 6, dtype=torch.bool))
    plain = SemanticAlignment(SAMOptions(proj_dim=8, head_norm="none", source="consolidated"), CONTEXT).train()
    normed = SemanticAlignment(SAMOptions(proj_dim=8, source="consolidated"), CONTEXT).train()
    assert SAMOptions().head_norm == "batch"
    plain_gap = abs(plain(visual, text).loss.item() - math.log(4))
    normed_gap = abs(normed(visual, text).loss.item() - math.log(4))
    assert plain_gap < 1e-4 and normed_gap > 100 * plain_gap
