"""Efficiency figures: settings, summaries, per-component profiling, the no-memory comparison, and a
1-epoch MCSAM run whose results.json holds every efficiency field; plus the fast decoders' equality
with the recompute-the-prefix reference decoders of ``benchmarks/reference_decoding.py``."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from rrgbench.config import EfficiencyOptions, resolve_config
from rrgbench.decode import beam_search, greedy
from rrgbench.errors import ConfigError
from rrgbench.extension.components import BuildContext, NoMemory
from rrgbench.extension.plugins import registry
from rrgbench.model import build_model
from rrgbench.run.efficiency import (
    ComponentProfiler,
    EfficiencyInputs,
    EfficiencySettings,
    has_memory,
    memory_replaced_by_identity,
    peak_rss_bytes,
    profile_components,
    reset_peak_memory,
    summarize,
    train_figures,
    vs_no_memory,
)
from rrgbench.run.evaluate import parameter_counts


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids waiting for time slices."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CONTEXT = BuildContext(d_model=32, vocab_size=30, pad_id=0, bos_id=1, eos_id=2, max_len=12, n_views=1, image_size=64)
CPU = torch.device("cpu")
FAST = EfficiencySettings(mode="fast", warmup=0, repeats=1, batch_repeats=1, profile_repeats=1)


def tiny_model(tiny, recipe="mcsam", **extra):
    config = resolve_config(registry(), recipe, "synthetic", {**_applicable(recipe, tiny), **extra})
    torch.manual_seed(0)
    return build_model(registry(), config, CONTEXT).eval(), config


def _applicable(recipe, values):
    from rrgbench.config import applicable

    return applicable(registry(), recipe, "synthetic", values)


def _batch(n=2, length=6):
    ids = torch.randint(3, 30, (n, length))
    ids[:, 0] = 1
    return dataclasses.make_dataclass("B", ["images", "target_ids"])(torch.randn(n, 1, 3, 64, 64), ids)


def test_settings_follow_the_mode_and_auto_follows_the_run_length():
    full = EfficiencySettings.for_run(EfficiencyOptions(mode="full"), train_steps=10)
    fast = EfficiencySettings.for_run(EfficiencyOptions(mode="fast", budget_seconds=5.0), train_steps=10_000)
    assert (full.mode, full.repeats, full.batch_repeats) == ("full", 5, 2)
    assert (fast.mode, fast.repeats, fast.batch_repeats, fast.budget_seconds) == ("fast", 2, 1, 5.0)
    assert EfficiencySettings.for_run(EfficiencyOptions(mode="off"), 10).enabled is False
    assert EfficiencySettings.for_run(EfficiencyOptions(), train_steps=1999).mode == "fast"
    assert EfficiencySettings.for_run(EfficiencyOptions(), train_steps=2000).mode == "full"


def test_an_unknown_efficiency_mode_is_refused_before_the_run(tiny):
    with pytest.raises(ConfigError, match=r"efficiency\.mode"):
        resolve_config(registry(), "transformer", "synthetic", {**tiny, "efficiency.mode": "quick"})


def test_summaries_exclude_the_warmup_step_and_use_the_median_step():
    stats = summarize([1.0, 2.0, 3.0, 4.0])
    assert stats["median"] == 2.5 and stats["n"] == 4 and 3.0 < stats["p90"] <= 4.0
    train = train_figures([10.0, 1.0, 1.0], [8, 8, 8])
    assert train.steps_timed == 2 and train.warmup_steps_excluded == 1
    assert train.samples_per_second == pytest.approx(8.0)
    paused = train_figures([1.0, 0.2, 0.2, 0.2, 30.0], [8] * 5)  # a 30 s pause must not change samples/s
    assert paused.samples_per_second == pytest.approx(40.0)
    assert train_figures([], []) is None


def test_parameters_per_component(tiny):
    model, _ = tiny_model(tiny)
    counts = parameter_counts(model)
    assert counts.total == sum(counts.components[k] for k in ("encoder", "memory", "alignment", "decoder"))
    assert counts.components["memory"] > 0 and counts.trainable <= counts.total


def test_profiler_times_every_component_and_cleans_up(tiny):
    model, _ = tiny_model(tiny)
    batch = _batch()
    profile = profile_components(model, CPU, lambda: model(batch.images, batch.target_ids), repeats=1)
    assert set(profile["seconds"]) == {"encoder", "memory", "alignment", "decoder"}
    assert profile["memory_modules"] == ["memory"] and 0 < profile["memory_share"] < 1
    assert sum(profile["share"].values()) <= 1.0 + 1e-6
    assert "decode" not in vars(model.decoder)  # the method wrappers are gone
    assert not model.memory._forward_hooks and not model.memory._forward_pre_hooks


def test_r2gen_relational_memory_counts_as_memory_inside_the_decoder(tiny):
    model, _ = tiny_model(tiny, "r2gen")
    batch = _batch()
    with ComponentProfiler(model, CPU) as profiler:
        model(batch.images, batch.target_ids)
    assert profiler.nested_memories == ["decoder/rm"] and profiler.seconds["decoder/rm"] > 0
    assert profiler.seconds["decoder"] >= profiler.seconds["decoder/rm"]


def test_identity_swap_is_temporary(tiny):
    model, _ = tiny_model(tiny)
    original = model.memory
    with memory_replaced_by_identity(model):
        assert isinstance(model.memory, NoMemory) and not has_memory(model)
    assert model.memory is original and has_memory(model)


def _inputs(model, config, reg=None):
    return EfficiencyInputs(model=model, config=config, device=CPU, test_loader=[], bos_id=1, eos_id=2,
                            registry=reg or registry(), settings=FAST)


def test_vs_no_memory_identity_and_unavailable(tiny):
    model, config = tiny_model(tiny, **{"decode.max_len": 4})
    result = vs_no_memory(_inputs(model, config), _batch())
    assert result["method"] == "identity" and result["decode_steps"] == 4
    assert result["forward_seconds"] > 0 and result["forward_seconds_without"] > 0
    assert result["decode_overhead"] is not None
    plain, plain_config = tiny_model(tiny, "transformer")
    assert "no memory component" in vs_no_memory(_inputs(plain, plain_config), _batch())["unavailable"]


class _DeclaringRegistry:
    """The real registry, with the mcsam recipe declaring a no-memory baseline."""

    def __init__(self, inner):
        self.inner = inner

    def get(self, kind, name):
        entry = self.inner.get(kind, name)
        if kind == "model" and name == "mcsam":
            return dataclasses.replace(entry, extra={**entry.extra, "baseline_without_memory": "mcsam-no-memory"})
        return entry

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_vs_no_memory_uses_a_declared_counterpart_recipe(tiny):
    model, config = tiny_model(tiny, **{"decode.max_len": 3})
    result = vs_no_memory(_inputs(model, config, _DeclaringRegistry(registry())), _batch())
    assert result["method"] == "recipe" and result["reference"] == "mcsam-no-memory"
    assert result["forward_seconds_without"] > 0


def test_peak_memory_counters_reset_and_grow():
    before = peak_rss_bytes()
    assert before > 10 * 2**20
    if reset_peak_memory(CPU):  # Linux: VmHWM drops to the current RSS
        block = bytearray(64 * 2**20)
        block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
        grown = peak_rss_bytes()
        del block
        assert grown >= 64 * 2**20


@pytest.mark.parametrize("recipe", ["mcsam", "transformer", "r2gen"])
def test_cached_decoding_equals_recomputing_the_prefix(tiny, recipe, benchmark_module):
    reference = benchmark_module("reference_decoding")
    model, _ = tiny_model(tiny, recipe, **{"decoder.n_prompts": 2} if recipe != "r2gen" else {})
    with torch.no_grad():
        for seed in range(2):
            torch.manual_seed(seed)
            encoded = model.prepare(torch.randn(3, 1, 3, 64, 64))
            assert beam_search(model, encoded, 3, 12, 1, 2) == reference.beam_search_recompute(model, encoded, 3, 12,
                                                                                               1, 2)
            assert greedy(model, encoded, 12, 1, 2) == reference.greedy_recompute(model, encoded, 12, 1, 2)
            fixed = reference.NoEos(model, 2)
            assert [len(r) for r in beam_search(fixed, encoded, 2, 7, 1, 2)] == [7, 7, 7]


@pytest.mark.slow
def test_one_epoch_mcsam_run_records_every_efficiency_field(tiny, tmp_path, monkeypatch):
    from rrgbench.run.loop import RunRequest, run_training

    config = resolve_config(registry(), "mcsam", "synthetic", {**tiny, "memory.heads": 2, "scoring.skip": "meteor",
                                                               "scoring.resamples": 50, "efficiency.mode": "fast"})
    request = RunRequest(out=tmp_path, device="cpu", progress=False, log=lambda _: None)
    run = run_training(registry(), config, request)
    eff = json.loads((run.path / "results.json").read_text())["efficiency"]
    assert eff["parameters"]["total"] > 0 and eff["parameters"]["components"]["memory"] > 0
    assert eff["train"]["step_seconds"]["median"] > 0 and eff["train"]["samples_per_second"] > 0
    latency = eff["inference"]["latency_batch1"]
    assert latency["seconds"]["median"] > 0 and latency["seconds"]["p90"] >= latency["seconds"]["median"]
    assert eff["inference"]["throughput"]["studies_per_second"] > 0
    assert eff["peak_memory"]["run"]["peak_rss_bytes"] > 0 and eff["peak_memory"]["inference"]["peak_rss_bytes"] > 0
    assert 0 < eff["retrieval"]["share_of_forward"] < 1 and 0 < eff["retrieval"]["share_of_generate"] < 1
    assert eff["retrieval"]["memory_size"] == config.memory.size
    vs = eff["retrieval"]["vs_no_memory"]
    assert vs["method"] == "identity" and vs["decode_seconds"] > 0 and vs["decode_seconds_without"] > 0
    assert eff["test_set_decode"]["seconds"] > 0 and eff["test_set_decode"]["studies"] == 12
    assert set(eff["components"]) == {"forward", "generate_batch1"}
