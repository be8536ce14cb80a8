"""Tests for the baselines plugin: Show-Tell LSTM (cached == full), nearest-neighbour retrieval, listing."""

from __future__ import annotations

import pytest
import rrgbench_baselines
import rrgbench_builtins
import torch
from rrgbench_baselines.lstm import LSTMDecoder
from rrgbench_baselines.retrieval import RetrievalDecoder
from rrgbench_baselines.schemas import LSTMDecoderOptions

from rrgbench import cli
from rrgbench.config import resolve_config
from rrgbench.data.loader import Batch
from rrgbench.decode import generate
from rrgbench.errors import RRGBenchError
from rrgbench.extension.components import BuildContext, index_batch
from rrgbench.extension.plugins import PluginHost, Registry
from rrgbench.model import ReportGenerator, build_model

VOCAB, PAD, BOS, EOS = 25, 0, 1, 2
CONTEXT = BuildContext(d_model=32, vocab_size=VOCAB, pad_id=PAD, bos_id=BOS, eos_id=EOS, max_len=10, n_views=1,
                       image_size=64)
# Six training reports (word ids), of different lengths.
REPORTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14], [15], [16, 17, 18, 19], [20, 21, 22]]


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Only the built-ins and this plugin: independent of whatever else is installed."""
    host = PluginHost()
    host.register_plugin(rrgbench_builtins, name="builtins")
    host.register_plugin(rrgbench_baselines, name="baselines")
    return host.registry


# -- Show-Tell -------------------------------------------------------------------------------------
def _lstm(image_feed: str, layers: int = 2) -> LSTMDecoder:
    torch.manual_seed(0)
    options = LSTMDecoderOptions(hidden=24, layers=layers, dropout=0.3, image_feed=image_feed)
    return LSTMDecoder(options, CONTEXT).eval()


def _ids(batch: int, length: int) -> torch.Tensor:
    ids = torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(2))
    ids[:, 0] = BOS
    return ids


@pytest.mark.parametrize("image_feed", ["input", "state"])
@torch.no_grad()
def test_lstm_incremental_equals_full(image_feed: str) -> None:
    decoder = _lstm(image_feed)
    encoded = decoder.encode(torch.randn(3, 6, 32), None)
    ids = _ids(3, 8)
    full, _ = decoder.decode(encoded, decoder.embed(ids))
    assert full.shape == (3, 8, VOCAB)
    cache, steps = decoder.init_cache(encoded), []
    for t in range(ids.shape[1]):
        logits, cache = decoder.decode(encoded, decoder.embed(ids[:, t : t + 1]), cache)
        steps.append(logits)
    assert cache["t"] == 8 and cache["h"].shape == (3, 2, 24)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


@torch.no_grad()
def test_lstm_cache_is_batch_first_and_reorderable() -> None:
    decoder = _lstm("input")
    encoded = decoder.encode(torch.randn(3, 6, 32), None)
    ids = _ids(3, 6)
    cache = decoder.init_cache(encoded)
    for t in range(3):
        _, cache = decoder.decode(encoded, decoder.embed(ids[:, t : t + 1]), cache)
    order = torch.tensor([1, 2, 0])
    cache, encoded, ids = index_batch(cache, order), index_batch(encoded, order), ids[order]
    logits, _ = decoder.decode(encoded, decoder.embed(ids[:, 3:4]), cache)
    full, _ = decoder.decode(encoded, decoder.embed(ids))
    assert torch.allclose(logits[:, 0], full[:, 3], atol=1e-5)


@torch.no_grad()
def test_lstm_depends_on_the_image() -> None:
    decoder = _lstm("input", layers=1)
    ids = _ids(2, 4)
    a, _ = decoder.decode(decoder.encode(torch.randn(2, 6, 32), None), decoder.embed(ids))
    b, _ = decoder.decode(decoder.encode(torch.randn(2, 6, 32), None), decoder.embed(ids))
    assert not torch.allclose(a, b)


def test_show_tell_recipe(registry: Registry) -> None:
    config = resolve_config(registry, "show-tell", "synthetic", profile="paper")
    assert config.components["decoder"] == "lstm"
    s = config.sections
    assert (s["decoder"].hidden, s["decoder"].layers, s["decoder"].dropout) == (512, 1, 0.5)
    assert s["encoder"].backbone == "resnet101"
    small = resolve_config(registry, "show-tell", "synthetic").sections
    assert small["decoder"].hidden == 256 and small["encoder"].backbone == "regnetx_002"


# -- nearest neighbour -----------------------------------------------------------------------------
def _targets(reports: list[list[int]]) -> torch.Tensor:
    width = max(len(r) for r in reports) + 2
    ids = torch.full((len(reports), width), PAD, dtype=torch.long)
    for row, words in enumerate(reports):
        ids[row, : len(words) + 2] = torch.tensor([BOS, *words, EOS])
    return ids


def _batches(images: torch.Tensor, reports: list[list[int]], size: int) -> list[Batch]:
    batches = []
    for start in range(0, len(reports), size):
        chunk = reports[start : start + size]
        batches.append(Batch([f"s{start + i}" for i in range(len(chunk))], images[start : start + size],
                             _targets(chunk), ["report"] * len(chunk)))
    return batches


@pytest.fixture(scope="module")
def train_images() -> torch.Tensor:
    return torch.randn(len(REPORTS), 1, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def nn_model(registry: Registry, train_images: torch.Tensor) -> ReportGenerator:
    torch.manual_seed(0)
    overrides = {"model.d_model": 32, "data.image_size": 64, "encoder.backbone": "test_resnet"}
    config = resolve_config(registry, "nearest-neighbor", "synthetic", overrides)
    model = build_model(registry, config, CONTEXT)
    assert model.components_wanting_initialization() == [model.decoder]
    summary = model.summarize(_batches(train_images, REPORTS, size=4))
    report = model.decoder.initialize(summary)
    assert report == {"studies": len(REPORTS), "feature_dim": 32}
    return model.eval()


def test_nearest_neighbor_recipe_does_not_train(registry: Registry) -> None:
    for profile in ("small", "paper"):
        config = resolve_config(registry, "nearest-neighbor", "synthetic", profile=profile)
        assert config.sections["train"].epochs == 0
        assert config.sections["encoder"].position_embedding is False
        assert config.sections["train"].amp is False
        assert config.components["decoder"] == "retrieval"


@pytest.mark.parametrize("method,beam", [("greedy", 1), ("beam", 3)])
def test_decoding_a_training_image_returns_its_report_verbatim(nn_model: ReportGenerator,
                                                               train_images: torch.Tensor, method: str,
                                                               beam: int) -> None:
    order = [4, 0, 5, 2, 1, 3]  # other batch composition and order than when the index was built
    outputs = generate(nn_model, train_images[order], method, beam, 12, BOS, EOS)
    assert outputs == [REPORTS[j] for j in order]


@torch.no_grad()
def test_duplicated_image_retrieves_its_study(nn_model: ReportGenerator, train_images: torch.Tensor) -> None:
    query = torch.cat([torch.randn(1, 1, 3, 64, 64), train_images[2:3].clone()])
    encoded = nn_model.prepare(query)
    assert int(encoded["index"][1]) == 2
    assert float(encoded["similarity"][1]) == pytest.approx(1.0, abs=1e-5)
    assert generate(nn_model, query, "greedy", 1, 12, BOS, EOS)[1] == REPORTS[2]


def test_query_mean_matches_the_pooled_feature(nn_model: ReportGenerator, train_images: torch.Tensor) -> None:
    with torch.no_grad():
        feats = nn_model.encoder(train_images[:2])
    assert torch.allclose(feats.tokens.mean(dim=1), feats.pooled, atol=1e-5)


def test_ties_pick_the_lowest_index() -> None:
    decoder = RetrievalDecoder(None, CONTEXT)
    decoder.keys = torch.nn.functional.normalize(torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0]]), dim=-1)
    decoder.reports = _targets([[5], [6], [7]]).int()
    index, similarity = decoder.neighbours(torch.tensor([[3.0, 0.0]]))
    assert int(index) == 1 and float(similarity) == pytest.approx(1.0)


def test_uninitialised_index_is_a_clear_error() -> None:
    decoder = RetrievalDecoder(None, CONTEXT)
    with pytest.raises(RRGBenchError, match="initialize"):
        decoder.encode(torch.randn(1, 4, 32), None)


@torch.no_grad()
def test_full_pass_puts_all_mass_on_the_retrieved_report(nn_model: ReportGenerator,
                                                         train_images: torch.Tensor) -> None:
    encoded = nn_model.prepare(train_images[:1])
    logits, _ = nn_model.decoder.decode(encoded, nn_model.decoder.embed(torch.zeros(1, 7, dtype=torch.long)))
    assert logits.argmax(dim=-1)[0].tolist() == [*REPORTS[0], EOS, EOS, EOS, EOS]
    assert torch.softmax(logits, dim=-1).amax(dim=-1).min() > 0.999


def test_index_survives_a_checkpoint_round_trip(registry: Registry, nn_model: ReportGenerator,
                                                train_images: torch.Tensor) -> None:
    overrides = {"model.d_model": 32, "data.image_size": 64, "encoder.backbone": "test_resnet"}
    fresh = build_model(registry, resolve_config(registry, "nearest-neighbor", "synthetic", overrides), CONTEXT)
    fresh.load_state_dict(nn_model.state_dict())
    assert torch.equal(fresh.decoder.keys, nn_model.decoder.keys)
    assert generate(fresh.eval(), train_images[3:4], "greedy", 1, 12, BOS, EOS) == [REPORTS[3]]


def test_a_training_step_is_a_harmless_no_op(nn_model: ReportGenerator, train_images: torch.Tensor) -> None:
    before = {k: v.clone() for k, v in nn_model.state_dict().items()}
    nn_model.train()
    try:
        assert not nn_model.encoder.training  # the frozen encoder stays in eval mode
        out = nn_model(train_images[:2], _targets(REPORTS[:2]))
        out.loss.backward()
        assert all(p.grad is None for p in nn_model.parameters())
    finally:
        nn_model.eval()
    after = nn_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# -- registration ----------------------------------------------------------------------------------
def test_list_models_shows_the_baselines(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "models"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    for name, word in (("r2gen", "relational memory"), ("show-tell", "LSTM"), ("nearest-neighbor", "retrieval")):
        assert name in lines, out
        assert word.lower() in lines[name].lower()
