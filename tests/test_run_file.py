"""``rrgbench run --config FILE``, ``--print-config`` and the values ``list models --options`` shows."""

from __future__ import annotations

import argparse

import pytest
import yaml

from rrgbench.cli import main
from rrgbench.cli.run import resolve_configs
from rrgbench.errors import ConfigError
from rrgbench.extension.plugins import registry


def _args(argv):
    from rrgbench.cli import build_parser

    return build_parser().parse_args(["run", *argv])


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_file_resolves_to_the_same_fingerprint_as_the_equivalent_flags(tmp_path):
    run_file = _write(tmp_path / "run.yaml", {"model": "mcsam", "dataset": "synthetic", "seeds": [1, 2],
                                              "profile": "small",
                                              "overrides": {"memory.size": 64, "train.epochs": 2}})
    from_file = resolve_configs(registry(), _args(["--config", str(run_file)]))
    from_flags = resolve_configs(registry(), _args(["--model", "mcsam", "--seed", "1,2", "--profile", "small",
                                                    "--set", "memory.size=64", "--set", "train.epochs=2"]))
    assert [c.fingerprint() for c in from_file] == [c.fingerprint() for c in from_flags]
    assert [c.seed for c in from_file] == [1, 2]
    assert from_file[0].sources["memory.size"] == "file" and from_flags[0].sources["memory.size"] == "flag"
    assert from_file[0].overrides["file"] == {"memory.size": 64, "train.epochs": 2}


def test_flags_override_the_file(tmp_path):
    run_file = _write(tmp_path / "run.yaml", {"model": "mcsam", "seed": 3,
                                              "overrides": {"memory.size": 64, "train.lr": 0.01}})
    [config] = resolve_configs(registry(), _args(["--config", str(run_file), "--seed", "5", "--set",
                                                  "memory.size=128", "--epochs", "4"]))
    assert config.seed == 5 and config.memory.size == 128 and config.train.epochs == 4 and config.train.lr == 0.01
    assert config.sources["memory.size"] == "flag" and config.sources["train.lr"] == "file"
    with pytest.raises(ConfigError, match=r"run.yaml: overrides: unknown option 'memory.size'"):  # strict
        resolve_configs(registry(), _args(["--config", str(run_file), "--model", "transformer"]))


@pytest.mark.parametrize("data, message", [
    ({"model": "mcsam", "overrides": {"memory.sise": 8}}, "overrides: unknown option 'memory.sise' (did you mean"),
    ({"model": "mcsam", "datasets": ["synthetic", "iu-xray"]}, "a run trains on one dataset"),
    ({"model": "mcsam", "epochs": 3}, "unknown key 'epochs'"),
    ({"model": "mcsam", "seed": 1, "seeds": [2]}, "'seed' or 'seeds', not both"),
])
def test_a_wrong_run_file_is_a_one_line_error_naming_the_file(tmp_path, capsys, data, message):
    run_file = _write(tmp_path / "bad.yaml", data)
    assert main(["run", "--config", str(run_file), "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "bad.yaml" in err and len(err.splitlines()) == 1


def test_print_config_shows_every_value_with_its_source_and_does_not_train(tmp_path, capsys):
    run_file = _write(tmp_path / "run.yaml", {"model": "mcsam", "overrides": {"memory.size": 64}})
    code = main(["run", "--config", str(run_file), "--set", "train.epochs=2", "--out", str(tmp_path / "runs"),
                 "--print-config"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and not (tmp_path / "runs").exists()
    assert out[0].startswith("# mcsam on synthetic, profile small, seed 0 (config fingerprint ")
    assert "memory.size = 64  [file]" in out and "train.epochs = 2  [flag]" in out
    assert 'encoder.backbone = "regnetx_002"  [profile]' in out and "data.num_workers = -1  [default]" in out
    assert "data.flip = false  [dataset]" in out
    assert any(line.startswith("decode.beam_size = 3  [recipe]") for line in out)
    [config] = resolve_configs(registry(), argparse.Namespace(**{**vars(_args(["--config", str(run_file)])),
                                                                 "overrides": ["train.epochs=2"]}))
    assert f"(config fingerprint {config.fingerprint()})" in out[0]


def test_list_models_options_shows_the_value_a_run_uses(capsys):
    assert main(["list", "models", "r2gen", "--options"]) == 0
    out = capsys.readouterr().out
    assert "encoder.backbone: str = 'regnetx_002'  [profile]" in out  # synthetic's small profile
    assert "rrgbench list options --model r2gen --dataset synthetic" in out
    assert main(["list", "models", "r2gen", "--options", "--profile", "paper"]) == 0
    out = capsys.readouterr().out
    assert "encoder.backbone: str = 'resnet101'  [recipe]" in out and "model.d_model = 512  [recipe]" in out
