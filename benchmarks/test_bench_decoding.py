"""Decoding throughput: batched beam search on the incremental cache against recomputing the prefix.

The model is the MCSAM recipe at the synthetic ``small`` profile (d 128, 2 decoder layers, 8 prompt
tokens, a 256-slot clinical memory queried at every step), randomly initialised: decoding cost does
not depend on the weights once the length is fixed. ``eos`` is masked (:class:`NoEos`), so every
hypothesis runs exactly ``LENGTH`` steps. ``rrgbench.decode`` must return the same tokens as the
reference decoders of ``reference_decoding.py`` (checked by the plain tests below and in
``tests/test_efficiency.py``); the printed ratio ``decode/...`` is the speed-up (target: >= 3x at
length 100 on CPU).
"""

from __future__ import annotations

import pytest
import torch
from benchutil import index_random_reports, ratio, record_median
from reference_decoding import NoEos, RisingEos, beam_search_recompute, greedy_recompute

from rrgbench.config import resolve_config
from rrgbench.decode import beam_search, greedy
from rrgbench.extension.components import BuildContext
from rrgbench.extension.plugins import registry as get_registry
from rrgbench.model import build_model

LENGTH, BATCH, BEAM, VOCAB = 100, 8, 3, 760  # 760: about the IU X-Ray vocabulary at threshold 3
BOS, EOS = 1, 2


def small_model(registry, recipe: str = "mcsam", **overrides):
    context = BuildContext(d_model=128, vocab_size=VOCAB, pad_id=0, bos_id=BOS, eos_id=EOS, max_len=LENGTH,
                           n_views=1, image_size=128)
    config = resolve_config(registry, recipe, "synthetic", overrides)
    torch.manual_seed(0)
    model = build_model(registry, config, context).eval()
    index_random_reports(model, n_studies=20, length=15, bos_id=BOS, eos_id=EOS)
    return model


@pytest.fixture(scope="module")
def prepared(registry):
    model = small_model(registry)
    with torch.no_grad():
        encoded = model.prepare(torch.randn(BATCH, 1, 3, 128, 128))
    return NoEos(model, EOS), encoded


DECODERS = {
    "beam-cached": lambda m, e: beam_search(m, e, BEAM, LENGTH, BOS, EOS),
    "beam-recompute": lambda m, e: beam_search_recompute(m, e, BEAM, LENGTH, BOS, EOS),
    "greedy-cached": lambda m, e: greedy(m, e, LENGTH, BOS, EOS),
    "greedy-recompute": lambda m, e: greedy_recompute(m, e, LENGTH, BOS, EOS),
}


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoding_throughput(benchmark, prepared, name, torch_threads):
    model, encoded = prepared
    rounds = 1 if name.endswith("recompute") else 3
    out = benchmark.pedantic(DECODERS[name], args=(model, encoded), rounds=rounds, warmup_rounds=1)
    assert [len(row) for row in out] == [LENGTH] * BATCH
    benchmark.extra_info.update({"length": LENGTH, "batch": BATCH, "beam": BEAM if "beam" in name else 1,
                                 "tokens": LENGTH * BATCH, "threads": torch_threads})
    record_median(name, benchmark)
    method = name.split("-")[0]
    ratio(f"decode/{method}: recompute over cached at length {LENGTH} (speed-up x)", f"{method}-recompute",
          f"{method}-cached")


@pytest.mark.parametrize("recipe", get_registry().names("model"))
def test_cached_and_recomputed_decoding_agree(registry, recipe):
    """Every recipe: the same tokens from the incremental cache as from recomputing the prefix, with
    hypotheses ending at different steps (``RisingEos``), and the same early exit: as many cached steps as
    reference passes, fewer than ``max_len``."""
    model, max_len = small_model(registry, recipe), 40
    images = torch.randn(4, 1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    images = images * torch.tensor([0.3, 1.0, 3.0, 10.0])[:, None, None, None, None]  # studies far apart
    with torch.no_grad():
        encoded = model.prepare(images)
        for decode, reference in ((lambda m: beam_search(m, encoded, BEAM, max_len, BOS, EOS),
                                   lambda m: beam_search_recompute(m, encoded, BEAM, max_len, BOS, EOS)),
                                  (lambda m: greedy(m, encoded, max_len, BOS, EOS),
                                   lambda m: greedy_recompute(m, encoded, max_len, BOS, EOS))):
            cached, recomputed = RisingEos(model, EOS, 0.1), RisingEos(model, EOS, 0.1)
            tokens = decode(cached)
            assert tokens == reference(recomputed)
            assert cached.steps == recomputed.passes < max_len
            assert max(len(row) for row in tokens) < max_len
        assert beam_search(model, encoded, BEAM, 20, BOS, EOS) == beam_search_recompute(model, encoded, BEAM, 20,
                                                                                        BOS, EOS)
