"""Tests for the r2gen plugin: relational memory, MCLN, cached decoding equal to the full pass, recipe."""

from __future__ import annotations

import itertools

import pytest
import rrgbench_builtins
import rrgbench_r2gen
import torch
from rrgbench_r2gen.memory import ConditionalLayerNorm, RelationalMemory

from rrgbench.config import resolve_config
from rrgbench.decode import generate
from rrgbench.extension.components import BuildContext, index_batch
from rrgbench.extension.plugins import PluginHost, Registry
from rrgbench.model import ReportGenerator, build_model

D, SLOTS, VOCAB = 16, 3, 30


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Only the built-ins and this plugin: independent of whatever else is installed."""
    host = PluginHost()
    host.register_plugin(rrgbench_builtins, name="builtins")
    host.register_plugin(rrgbench_r2gen, name="r2gen")
    return host.registry


@pytest.fixture(scope="module")
def model(registry: Registry) -> ReportGenerator:
    torch.manual_seed(0)
    overrides = {"model.d_model": 32, "data.image_size": 64, "encoder.backbone": "test_resnet"}
    config = resolve_config(registry, "r2gen", "synthetic", overrides)
    context = BuildContext(d_model=32, vocab_size=VOCAB, pad_id=0, bos_id=1, eos_id=2, max_len=12, n_views=1,
                           image_size=64)
    return build_model(registry, config, context).eval()


def _memory() -> RelationalMemory:
    torch.manual_seed(0)
    return RelationalMemory(SLOTS, D, heads=4, dropout=0.0).eval()


def _ids(batch: int, length: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (batch, length), generator=generator)
    ids[:, 0] = 1
    return ids


def test_relational_memory_state_changes_at_every_step() -> None:
    rm = _memory()
    tokens = torch.randn(2, 5, D)
    states, last = rm(tokens, rm.initial(2, torch.device("cpu")))
    assert states.shape == (2, 5, SLOTS, D)
    assert torch.equal(last, states[:, -1])
    previous = rm.initial(2, torch.device("cpu"))
    for t in range(5):
        assert not torch.allclose(states[:, t], previous)
        previous = states[:, t]


def test_relational_memory_state_depends_only_on_tokens_so_far() -> None:
    rm = _memory()
    tokens = torch.randn(2, 5, D)
    changed = tokens.clone()
    changed[:, 3] += 1.0
    start = rm.initial(2, torch.device("cpu"))
    before, _ = rm(tokens, start)
    after, _ = rm(changed, start)
    assert torch.equal(before[:, :3], after[:, :3])
    assert not torch.allclose(before[:, 3:], after[:, 3:])


def test_initial_memory_is_padded_identity() -> None:
    memory = _memory().initial(2, torch.device("cpu"))
    assert memory.shape == (2, SLOTS, D)
    assert torch.equal(memory[0, :, :SLOTS], torch.eye(SLOTS))
    assert torch.count_nonzero(memory[:, :, SLOTS:]) == 0


def test_gated_update_shapes_and_ranges() -> None:
    rm = _memory()
    token, memory = torch.randn(4, D), torch.randn(4, SLOTS, D)
    input_gate, forget_gate = rm.gates(token, memory)
    assert input_gate.shape == forget_gate.shape == (4, SLOTS, D)
    for gate in (input_gate, forget_gate):
        assert bool(((gate > 0) & (gate < 1)).all())
    assert not torch.allclose(input_gate, forget_gate)
    assert rm.step(token, memory).shape == (4, SLOTS, D)


def test_mcln_is_conditioned_by_the_memory() -> None:
    torch.manual_seed(0)
    norm = ConditionalLayerNorm(D, SLOTS * D)
    x = torch.randn(2, 4, D)
    memory, other = torch.randn(2, 4, SLOTS * D), torch.randn(2, 4, SLOTS * D)
    assert torch.equal(norm(x, memory), norm(x, memory.clone()))
    assert not torch.allclose(norm(x, memory), norm(x, other))
    shifted = memory.clone()
    shifted[:, 2] = other[:, 2]  # a different memory at one position changes that position only
    changed = (norm(x, memory) - norm(x, shifted)).abs().amax(dim=-1)
    assert bool((changed[:, 2] > 0).all())
    assert torch.equal(changed[:, [0, 1, 3]], torch.zeros(2, 3))


def test_mcln_output_is_layer_norm_with_shifted_gain_and_bias() -> None:
    torch.manual_seed(0)
    norm = ConditionalLayerNorm(D, SLOTS * D)
    x, memory = torch.randn(2, 3, D), torch.randn(2, 3, SLOTS * D)
    normed = torch.nn.functional.layer_norm(x, (D,), eps=1e-6)
    expected = (1 + norm.mlp_gamma(memory)) * normed + norm.mlp_beta(memory)
    assert torch.allclose(norm(x, memory), expected, atol=1e-6)


def test_decoder_uses_relational_memory_and_mcln(model: ReportGenerator) -> None:
    decoder = model.decoder
    assert isinstance(decoder.rm, RelationalMemory)
    assert decoder.rm.slots == 3
    assert all(isinstance(n, ConditionalLayerNorm) for layer in decoder.layers for n in layer.norms)


@torch.no_grad()
def test_incremental_steps_equal_the_full_pass(model: ReportGenerator) -> None:
    images, ids = torch.randn(2, 1, 3, 64, 64), _ids(2, 9)
    encoded = model.prepare(images)
    full, _ = model.decoder.decode(encoded, model.decoder.embed(ids))
    cache, steps, memories = model.decoder.init_cache(encoded), [], []
    for t in range(ids.shape[1]):
        logits, cache = model.step(encoded, ids[:, t], cache)
        steps.append(logits)
        memories.append(cache["memory"])
    assert cache["t"] == ids.shape[1]
    assert torch.allclose(torch.stack(steps, dim=1), full, atol=1e-5)
    assert memories[0].shape == (2, 3, 32)
    for before, after in itertools.pairwise(memories):
        assert not torch.allclose(before, after)


@torch.no_grad()
def test_cache_reorders_along_the_batch_like_beam_search(model: ReportGenerator) -> None:
    images, ids = torch.randn(3, 1, 3, 64, 64), _ids(3, 7)
    encoded = model.prepare(images)
    cache = model.decoder.init_cache(encoded)
    for t in range(4):
        _, cache = model.step(encoded, ids[:, t], cache)
    order = torch.tensor([2, 0, 1])
    encoded, cache, ids = index_batch(encoded, order), index_batch(cache, order), ids[order]
    steps = []
    for t in range(4, 7):
        logits, cache = model.step(encoded, ids[:, t], cache)
        steps.append(logits)
    full, _ = model.decoder.decode(encoded, model.decoder.embed(ids))
    assert torch.allclose(torch.stack(steps, dim=1), full[:, 4:], atol=1e-5)


@torch.no_grad()
def test_greedy_decoding_follows_the_full_pass_argmax(model: ReportGenerator) -> None:
    images = torch.randn(2, 1, 3, 64, 64)
    outputs = generate(model, images, "greedy", 1, 6, bos_id=1, eos_id=2)
    encoded = model.prepare(images)
    for row, tokens in enumerate(outputs):
        prefix = torch.tensor([[1, *tokens]])
        single = index_batch(encoded, torch.tensor([row]))
        logits, _ = model.decoder.decode(single, model.decoder.embed(prefix))
        assert logits[0, : len(tokens)].argmax(dim=-1).tolist() == tokens


def test_training_forward_backward(model: ReportGenerator) -> None:
    model.train()
    try:
        out = model(torch.randn(2, 1, 3, 64, 64), _ids(2, 6))
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert model.decoder.rm.input_gates.weight.grad is not None
        assert model.decoder.layers[0].norms[0].mlp_gamma[0].weight.grad is not None
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_recipe_paper_settings(registry: Registry) -> None:
    config = resolve_config(registry, "r2gen", "synthetic", profile="paper")
    s = config.sections
    assert config.components == {"encoder": "timm", "memory": "none", "alignment": "none", "decoder": "r2gen"}
    assert s["encoder"].backbone == "resnet101"
    assert s["model"].d_model == 512
    assert (s["decoder"].layers, s["decoder"].heads, s["decoder"].d_ff) == (3, 8, 512)
    assert (s["decoder"].rm_slots, s["decoder"].rm_heads, s["decoder"].dropout) == (3, 8, 0.1)
    assert (s["decode"].method, s["decode"].beam_size) == ("beam", 3)
    assert s["train"].amsgrad and s["train"].weight_decay == 5e-5
    assert (s["train"].lr_visual, s["train"].lr, s["train"].clip_value) == (5e-5, 1e-4, 0.1)
    assert (s["train"].step_size, s["train"].gamma) == (50, 0.1)


def test_recipe_small_profile(registry: Registry) -> None:
    s = resolve_config(registry, "r2gen", "synthetic").sections
    assert s["model"].d_model == 128 and s["encoder"].backbone == "regnetx_002"
    assert s["decoder"].heads == s["decoder"].rm_heads == 4
