"""The per-vocabulary token table of decoding (:mod:`rrgbench.token_table`): same steps as the uncached path.

Every memory recipe decodes the same tokens with and without the table (beam and greedy), each step's logits
agree to float rounding, the table is rebuilt when any weight it depends on changes (an optimiser step, an
in-place edit of the memory matrix, ``load_state_dict``), the weights are checked once per batch (in
``prepare``), not per step, and the table is never used where the step's input is not a function of the
token id alone (training mode, autograd, a memory that is not position-wise).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

import rrgbench.token_table
from rrgbench.config import resolve_config
from rrgbench.decode import beam_search, generate, greedy
from rrgbench.extension.components import BuildContext
from rrgbench.extension.plugins import registry
from rrgbench.model import ReportGenerator, build_model
from rrgbench.token_table import weights_stamp

CONTEXT = BuildContext(d_model=32, vocab_size=30, pad_id=0, bos_id=1, eos_id=2, max_len=12, n_views=2,
                       image_size=64)
MEMORY_RECIPES = ("r2gencmn", "mcsam", "mcsam-frozen-memory")


def tiny_model(tiny: dict, recipe: str) -> ReportGenerator:
    memory = {"memory.size": 24, "memory.topk": 4} if recipe != "transformer" else {}
    config = resolve_config(registry(), recipe, "synthetic", {**tiny, **memory})
    torch.manual_seed(0)
    model = build_model(registry(), config, CONTEXT).eval()
    if memory:
        with torch.no_grad():
            model.memory.matrix.normal_()  # spread the slots: retrieval well away from ties
    return model


@contextmanager
def without_table(model: ReportGenerator):
    """The uncached path: every step queries the memory for every hypothesis."""
    model.token_table_enabled = False
    try:
        yield
    finally:
        model.token_table_enabled = True


def stepped_logits(model: ReportGenerator, encoded: dict, ids: torch.Tensor) -> torch.Tensor:
    cache, out = model.decoder.init_cache(encoded), []
    for t in range(ids.shape[1]):
        logits, cache = model.step(encoded, ids[:, t], cache)
        out.append(logits)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("recipe", MEMORY_RECIPES)
def test_table_steps_equal_the_uncached_steps(tiny, recipe):
    model = tiny_model(tiny, recipe)
    ids = torch.tensor([[1, 5, 6, 7, 0, 9], [1, 9, 8, 7, 6, 5]])  # a padding id is answered as padding too
    with torch.no_grad():
        encoded = model.prepare(torch.randn(2, 2, 3, 64, 64))
        assert model.uses_token_table()
        cached = stepped_logits(model, encoded, ids)
        table_beam = beam_search(model, encoded, 3, 12, 1, 2)
        table_greedy = greedy(model, encoded, 12, 1, 2)
        with without_table(model):
            assert not model.uses_token_table()
            uncached = stepped_logits(model, encoded, ids)
            assert beam_search(model, encoded, 3, 12, 1, 2) == table_beam
            assert greedy(model, encoded, 12, 1, 2) == table_greedy
        full, _ = model.decoder.decode(encoded, model.embed_text(ids)[0])
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


def test_table_is_rebuilt_when_the_weights_change(tiny):
    model = tiny_model(tiny, "r2gencmn")
    tokens = torch.tensor([3, 4, 5])
    images = torch.randn(2, 2, 3, 64, 64)
    calls = []
    original = model._all_token_inputs

    def counted():
        calls.append(1)
        return original()

    model._all_token_inputs = counted  # type: ignore[method-assign]

    def check():
        with torch.no_grad():
            model.prepare(images)  # where a decoded batch checks the table against the weights
            rows = model.step_inputs(tokens)
            with without_table(model):
                torch.testing.assert_close(rows, model.step_inputs(tokens), atol=1e-6, rtol=1e-6)

    check()
    check()
    assert len(calls) == 1  # reused while nothing changed
    with torch.no_grad():
        model.memory.matrix.mul_(-1.0)  # in place: same storage, new version
    check()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    loss = model(torch.randn(2, 2, 3, 64, 64), torch.tensor([[1, 5, 6, 2], [1, 7, 8, 2]])).loss
    loss.backward()
    optimizer.step()
    model.eval()
    check()
    state = {k: v.clone() for k, v in tiny_model(tiny, "r2gencmn").state_dict().items()}
    model.load_state_dict(state)
    check()
    assert len(calls) == 4


def test_weights_are_stamped_once_per_batch_not_per_step(tiny, monkeypatch):
    model = tiny_model(tiny, "r2gencmn")
    images = torch.randn(2, 2, 3, 64, 64)
    stamps = []
    original = rrgbench.token_table.weights_stamp

    def counted(modules):
        stamps.append(1)
        return original(modules)

    monkeypatch.setattr(rrgbench.token_table, "weights_stamp", counted)
    beam = generate(model, images, "beam", 3, 12, 1, 2)
    assert len(stamps) == 1  # 12 steps of 6 hypotheses, one stamp
    assert generate(model, images, "greedy", 1, 12, 1, 2) and len(stamps) == 2
    with without_table(model):
        assert generate(model, images, "beam", 3, 12, 1, 2) == beam
    assert len(stamps) == 2


def test_table_only_where_the_input_is_a_function_of_the_token(tiny):
    model = tiny_model(tiny, "r2gencmn")
    with torch.no_grad():
        assert model.uses_token_table()
        model.train()
        assert not model.uses_token_table()  # dropout on the retrieval weights
        model.eval()
        model.memory.train()
        assert not model.uses_token_table()
    model.memory.eval()
    assert not model.uses_token_table()  # autograd on
    with torch.no_grad():
        assert not tiny_model(tiny, "transformer").uses_token_table()  # no memory
        no_text = tiny_model(tiny, "r2gencmn")
        no_text.memory.applies_to = ("visual",)
        assert not no_text.uses_token_table()
        not_position_wise = tiny_model(tiny, "r2gencmn")
        not_position_wise.memory.position_wise = False
        assert not not_position_wise.uses_token_table()


def test_weights_stamp_follows_storage_version_and_modes():
    layer = torch.nn.Linear(3, 3)
    first = weights_stamp([layer])
    assert weights_stamp([layer]) == first
    with torch.no_grad():
        layer.weight.add_(1.0)
    second = weights_stamp([layer])
    assert second != first
    layer.weight.data = layer.weight.data.clone()
    outside = weights_stamp([layer])
    assert outside != second
    with torch.inference_mode():
        assert weights_stamp([layer]) != outside
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert weights_stamp([layer]) != outside
