"""Decoding and the Transformer decoder: incremental == full pass, beam 1 == greedy, batched beams."""

from __future__ import annotations

import pytest
import torch

from rrgbench.config import resolve_config
from rrgbench.decode import beam_search, greedy
from rrgbench.extension.components import BuildContext
from rrgbench.extension.plugins import registry
from rrgbench.model import build_model

CONTEXT = BuildContext(d_model=32, vocab_size=30, pad_id=0, bos_id=1, eos_id=2, max_len=12, n_views=2, image_size=64)


def tiny_model(tiny, **extra):
    config = resolve_config(registry(), "transformer", "synthetic", {**tiny, **extra})
    torch.manual_seed(0)
    return build_model(registry(), config, CONTEXT).eval()


@pytest.mark.parametrize("prompts", [0, 3])
def test_incremental_equals_full(tiny, prompts):
    model = tiny_model(tiny, **{"decoder.n_prompts": prompts})
    images = torch.randn(2, 2, 3, 64, 64)
    ids = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 9, 8, 7, 6, 5]])
    with torch.no_grad():
        encoded = model.prepare(images)
        full, _ = model.decoder.decode(encoded, model.embed_text(ids)[0])
        cache = model.decoder.init_cache(encoded)
        steps = []
        for t in range(ids.shape[1]):
            logits, cache = model.step(encoded, ids[:, t], cache)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_prompts_change_attention_length(tiny):
    assert tiny_model(tiny, **{"decoder.n_prompts": 4}).decoder.attention_length(10) == 14
    assert tiny_model(tiny).decoder.attention_length(10) == 10


def test_beam_one_equals_greedy(tiny):
    model = tiny_model(tiny)
    with torch.no_grad():
        encoded = model.prepare(torch.randn(3, 2, 3, 64, 64))
        assert beam_search(model, encoded, 1, 12, 1, 2) == greedy(model, encoded, 12, 1, 2)


def test_beam_search_is_batch_independent(tiny):
    """Decoding a study alone or inside a batch gives the same hypothesis (no cross-talk between rows)."""
    model = tiny_model(tiny)
    images = torch.randn(3, 2, 3, 64, 64)
    with torch.no_grad():
        batched = beam_search(model, model.prepare(images), 3, 12, 1, 2)
        alone = [beam_search(model, model.prepare(images[i : i + 1]), 3, 12, 1, 2)[0] for i in range(3)]
    assert batched == alone


def test_beam_search_scores_at_least_greedy(tiny):
    model = tiny_model(tiny)

    def logprob(encoded, tokens):
        cache, total, prev = model.decoder.init_cache(encoded), 0.0, torch.tensor([1])
        for token in [*tokens, 2][:12]:
            logits, cache = model.step(encoded, prev, cache)
            total += torch.log_softmax(logits, -1)[0, token].item()
            prev = torch.tensor([token])
        return total

    with torch.no_grad():
        encoded = model.prepare(torch.randn(1, 2, 3, 64, 64))
        g = greedy(model, encoded, 12, 1, 2)[0]
        b = beam_search(model, encoded, 4, 12, 1, 2)[0]
        assert logprob(encoded, b) >= logprob(encoded, g) - 1e-4


def test_transformer_word_embeddings_enter_at_unit_scale(tiny):
    """Xavier init (as R2Gen): a scaled word embedding is O(1), not sqrt(D) times what the cross-attention
    adds (with nn.Embedding's N(0, 1) init the decoder ignored the image and collapsed to one report)."""
    model = tiny_model(tiny)
    ids = torch.arange(3, CONTEXT.vocab_size)[None]
    scale = float(model.decoder.embed(ids).detach().std())
    assert 0.2 < scale < 2.0


def test_generate_records_no_graph(tiny):
    """The image side of a decode runs without autograd, even when the caller has it on."""
    from rrgbench.decode import generate

    model = tiny_model(tiny)
    seen = []
    model.encoder.register_forward_hook(lambda module, args, out: seen.append(out.tokens.requires_grad))
    assert torch.is_grad_enabled()
    tokens = generate(model, torch.randn(2, 2, 3, 64, 64), "beam", 2, 5, 1, 2)
    assert seen == [False] and len(tokens) == 2
