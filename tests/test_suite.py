"""Benchmark suites: parsing, planning the shipped suite files, skipping finished runs, failures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from record_factory import make_record, save

from rrgbench.errors import ConfigError
from rrgbench.extension.plugins import registry
from rrgbench.run.suite import already_finished, load_suite, parse_suite, plan, run_suite

SUITES = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"
ALL_MODELS = {"transformer", "r2gen", "r2gencmn", "show-tell", "nearest-neighbor", "mcsam", "mcsam-no-memory",
              "mcsam-random-memory", "mcsam-frozen-memory", "mcsam-no-sam", "mcsam-no-prompts"}


def test_parse_errors_name_the_entry():
    with pytest.raises(ConfigError, match=r"unknown key 'seed'.*did you mean 'seeds'"):
        parse_suite({"models": ["transformer"], "seed": [0]})
    with pytest.raises(ConfigError, match="'models' must list"):
        parse_suite({"models": []})
    with pytest.raises(ConfigError, match=r"models\[1\]: expected a recipe name"):
        parse_suite({"models": ["transformer", {"overrides": {}}]})
    with pytest.raises(ConfigError, match="seeds: expected a non-empty list of integers"):
        parse_suite({"models": ["transformer"], "seeds": ["a"]})


@pytest.mark.parametrize("name,seeds", [("synthetic.yaml", 3), ("ci-tiny.yaml", 1)])
def test_shipped_suites_cover_every_model(name, seeds):
    suite = load_suite(SUITES / name)
    assert set(suite.model_names) >= ALL_MODELS
    planned = plan(suite, registry())
    per_model: dict[str, set[int]] = {}
    for item in planned:
        per_model.setdefault(item.config.model, set()).add(item.config.seed)
    assert all(len(per_model[m]) >= seeds for m in ALL_MODELS)
    nn = next(p for p in planned if p.config.model == "nearest-neighbor")
    assert nn.config.sections["train"].epochs == 0
    no_prompts = next(p for p in planned if p.config.model == "mcsam-no-prompts")
    assert no_prompts.config.sections["decoder"].n_prompts == 0
    if name == "ci-tiny.yaml":
        assert "meteor" in suite.skip


def test_the_synthetic_suite_trains_every_generator_like_the_quickstart_run():
    from rrgbench.config import resolve_config

    planned = plan(load_suite(SUITES / "synthetic.yaml"), registry())
    quickstart = resolve_config(registry(), "mcsam", "synthetic", {}, seed=0)  # `rrgbench run --model mcsam`
    mcsam = next(p.config for p in planned if p.config.model == "mcsam" and p.config.seed == 0)
    assert mcsam.fingerprint() == quickstart.fingerprint()
    for item in planned:
        config = item.config
        assert (config.dataset_options.n_train, config.dataset_options.n_val, config.dataset_options.n_test,
                config.data.batch_size) == (3600, 100, 300, 32)
        assert config.train.epochs == (0 if config.model == "nearest-neighbor" else 9)
    sweep = sorted((p.config.sections["memory"].size, p.config.seed) for p in planned
                   if p.label.startswith("mcsam on") and "memory.size" in p.label)
    assert sweep == [(size, seed) for size in (64, 1024) for seed in (0, 1, 2)]  # every board row: 3 seeds
    assert len(planned) == 39


def test_suite_overrides_are_soft_model_overrides_strict():
    suite = parse_suite({"models": ["show-tell", "transformer"], "overrides": {"decoder.heads": 2}})
    configs = {p.config.model: p.config for p in plan(suite, registry())}
    assert not hasattr(configs["show-tell"].decoder, "heads")  # the LSTM has no heads: skipped
    assert configs["transformer"].sections["decoder"].heads == 2
    strict = parse_suite({"models": [{"model": "show-tell", "overrides": {"decoder.heads": 2}}]})
    with pytest.raises(ConfigError, match=r"show-tell on synthetic.*decoder.heads"):
        plan(strict, registry())


def _fake_training(calls, fail=()):
    """Stands in for training: a finished run folder whose record names the plugin code, as a real run's does."""
    def run_training(reg, config, request):
        from rrgbench.run.environment import plugin_code
        from rrgbench.run.layout import create_run

        calls.append(config.model)
        if config.model in fail:
            raise RuntimeError("boom")
        run = create_run(request.out, config)
        record = make_record(config.model, seed=config.seed, config=config.to_dict())
        record.environment.plugins = plugin_code(reg, config)
        save(run.path, record)
        run.set_status("finished")
        run.unlock()
        return run

    return run_training


def test_finished_runs_are_skipped_and_failures_reported(tmp_path, monkeypatch):
    import rrgbench.run.loop

    suite = parse_suite({"name": "t", "models": ["transformer", "r2gen"], "seeds": [0, 1]})
    calls: list[str] = []
    monkeypatch.setattr(rrgbench.run.loop, "run_training", _fake_training(calls, fail={"r2gen"}))
    first = run_suite(suite, registry(), tmp_path, log=lambda _: None)
    assert calls == ["transformer", "transformer", "r2gen", "r2gen"]
    assert len(first.finished) == 2 and len(first.failed) == 2 and not first.ok
    assert "boom" in first.failed[0][1]
    calls.clear()
    second = run_suite(suite, registry(), tmp_path, log=lambda _: None)
    assert calls == ["r2gen", "r2gen"] and len(second.skipped) == 2
    config = plan(suite, registry())[0].config
    assert already_finished(registry(), tmp_path, config) is not None


PLUGIN = """
from rrgbench import hookimpl

@hookimpl
def rrgbench_register_models(register):
    register("kv-transformer", description="a third-party recipe", ablation_of="transformer")
"""


def test_a_changed_plugin_reruns_its_runs_and_a_changed_readme_does_not(tmp_path, monkeypatch, fresh_plugins):
    import rrgbench.run.loop
    from rrgbench.extension.plugins import load_modules

    package = tmp_path / "src" / "kv_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PLUGIN)
    (package / "README.md").write_text("# kv plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    load_modules(fresh_plugins, ["kv_plugin"])
    suite = parse_suite({"name": "t", "models": ["kv-transformer", "transformer"]})
    calls: list[str] = []
    monkeypatch.setattr(rrgbench.run.loop, "run_training", _fake_training(calls))
    runs = tmp_path / "runs"
    run_suite(suite, fresh_plugins.registry, runs, log=lambda _: None)
    assert calls == ["kv-transformer", "transformer"]
    (package / "README.md").write_text("# kv plugin\n\nNow documented.\n")
    run_suite(suite, fresh_plugins.registry, runs, log=lambda _: None)
    assert calls == ["kv-transformer", "transformer"]  # documentation is not code: nothing re-runs
    (package / "__init__.py").write_text(PLUGIN + "# a changed line of code\n")
    run_suite(suite, fresh_plugins.registry, runs, log=lambda _: None)
    assert calls == ["kv-transformer", "transformer", "kv-transformer"]  # only the changed plugin's run


def test_suite_cli_dry_run(capsys):
    from rrgbench.cli import main

    assert main(["suite", str(SUITES / "ci-tiny.yaml"), "--dry-run", "--only", "mcsam*"]) == 0
    out = capsys.readouterr().out
    assert "suite 'ci-tiny': 6 runs" in out and "transformer" not in out


def test_an_interruption_stops_the_suite(tmp_path, monkeypatch):
    import signal

    import rrgbench.run.loop
    from rrgbench.run.resume import RunInterrupted

    calls: list[str] = []

    def interrupted(reg, config, request):
        calls.append(config.model)
        raise RunInterrupted("run interrupted by SIGTERM", signal.SIGTERM)

    monkeypatch.setattr(rrgbench.run.loop, "run_training", interrupted)
    suite = parse_suite({"models": ["transformer", "r2gen"]})
    with pytest.raises(RunInterrupted):
        run_suite(suite, registry(), tmp_path, log=lambda _: None)
    assert calls == ["transformer"]


def worker_training(reg, config, request):
    """A stand-in for run_training in worker processes (module level, so a spawned worker can import it)."""
    import os

    import torch

    from rrgbench.run.environment import plugin_code
    from rrgbench.run.layout import create_run

    if config.model == "r2gen":
        raise RuntimeError("boom")
    if config.model == "show-tell":
        os._exit(9)  # a worker killed mid-run (e.g. out of memory)
    run = create_run(request.out, config)
    record = make_record(config.model, seed=config.seed, config=config.to_dict())
    record.environment.plugins = plugin_code(reg, config)
    record.environment.platform = f"pid={os.getpid()} threads={torch.get_num_threads()}"
    request.log("trained")
    save(run.path, record)
    run.set_status("finished")
    run.unlock()
    return run


def test_jobs_run_in_worker_processes_with_one_thread_each(tmp_path):
    import os

    from rrgbench.record import load_records

    suite = parse_suite({"name": "t", "models": ["transformer", {"model": "r2gen", "seeds": [0]},
                                                {"model": "show-tell", "seeds": [1]}], "seeds": [0, 1], "jobs": 2})
    lines: list[str] = []
    result = run_suite(suite, registry(), tmp_path, log=lines.append, train=worker_training)
    assert sorted(result.finished) == ["transformer on synthetic, seed 0", "transformer on synthetic, seed 1"]
    failed = dict(result.failed)
    assert failed["r2gen on synthetic, seed 0"] == "RuntimeError: boom"
    assert "exited with code 9 without a result" in failed["show-tell on synthetic, seed 1"]
    platforms = {r.environment.platform for r in load_records(tmp_path).records}
    assert len(platforms) == 2 and all(p.endswith("threads=1") and f"pid={os.getpid()} " not in p for p in platforms)
    assert lines[0] == "suite 't': 4 of 4 runs to do, 2 at a time; 4 left (ETA after the first finished run)"
    assert any(re.match(r"\[\d/4\] done in \d+ s: transformer on synthetic, seed \d; \d left, about", line)
               for line in lines)
    again: list[str] = []
    second = run_suite(suite, registry(), tmp_path, log=again.append, train=worker_training, only=["trans*"])
    assert len(second.skipped) == 2 and again[2] == "suite 't': 0 of 2 runs to do, 2 at a time; nothing left"


def test_progress_estimates_from_finished_wall_times():
    from rrgbench.run.suite import RemainingTime

    progress = RemainingTime(total=5, jobs=2)
    assert progress.eta(["a"]) == "1 left (ETA after the first finished run)"
    progress.finished("a", 600.0)
    progress.finished("a", 1200.0)
    progress.finished("b", 60.0)
    # a: 900 s (its own mean), c: 620 s (mean of all finished) -> 1,520 s over 2 jobs
    assert progress.eta(["a", "c"]) == ("2 left, about 12 min 40 s (estimated from 3 finished runs' wall times, "
                                        "2 at a time)")
    assert progress.eta([]) == "nothing left"


def test_suite_name_and_jobs_are_checked():
    with pytest.raises(ConfigError, match=r"suite name '\.\./x' cannot name a folder"):
        parse_suite({"name": "../x", "models": ["transformer"]})
    with pytest.raises(ConfigError, match="jobs: expected at least 1"):
        parse_suite({"models": ["transformer"], "jobs": 0})
    assert parse_suite({"models": ["transformer"], "jobs": 4}).jobs == 4
