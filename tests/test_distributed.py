"""Multi-process training: sharding arithmetic, ordered gathering, and a real 2-process torchrun on CPU (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rrgbench.errors import ConfigError
from rrgbench.run.distributed import DistInfo, env_info, gather_in_order, merge_shards, on_main, shard_indices


def test_world_of_one_without_torchrun(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    info = env_info()
    assert info == DistInfo() and info.is_main and not info.enabled
    assert on_main(lambda: 41 + 1) == 42
    assert gather_in_order(["b", "a"], [1, 0]) == ["a", "b"]


def test_bad_torchrun_environment_is_a_config_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        env_info()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="RANK=2"):
        env_info()


def test_shards_of_a_global_batch_are_the_single_process_batch():
    """With per-rank batch B/W, global batch j over W ranks holds single-process batch j's studies."""
    n, batch, world = 37, 8, 2
    single = shard_indices(n, DistInfo(), shuffle=True, seed=5, epoch=3)
    assert sorted(single) == list(range(n))
    assert single == shard_indices(n, DistInfo(), shuffle=True, seed=5, epoch=3)  # a function of (seed, epoch)
    assert single != shard_indices(n, DistInfo(), shuffle=True, seed=5, epoch=4)
    shards = [shard_indices(n, DistInfo(rank, world), shuffle=True, seed=5, epoch=3) for rank in range(world)]
    local = batch // world
    for j in range(n // batch):  # full batches (the last one carries the sampler's padding)
        together = sorted(i for shard in shards for i in shard[j * local:(j + 1) * local])
        assert together == sorted(single[j * batch:(j + 1) * batch])


def test_merge_drops_padding_duplicates_and_restores_order():
    n, world = 5, 2
    shards = [shard_indices(n, DistInfo(rank, world), shuffle=False, seed=0, epoch=0) for rank in range(world)]
    assert sum(len(s) for s in shards) == 6  # one padding duplicate
    rows = [[(i, f"study-{i}") for i in shard] for shard in shards]
    assert merge_shards(rows) == [f"study-{i}" for i in range(n)]


DRIVER = """
import os, sys, torch
dump, stop = sys.argv[1], sys.argv[2] == "stop"
original = torch.optim.Adam.step
def step(self, *args, **kwargs):
    if int(os.environ.get("RANK", "0")) == 0 and not os.path.exists(dump):
        grads = [p.grad for group in self.param_groups for p in group["params"]]
        torch.save([None if g is None else g.clone() for g in grads], dump)
        if stop:
            os._exit(0)
    return original(self, *args, **kwargs)
torch.optim.Adam.step = step
from rrgbench.cli import main
raise SystemExit(main(sys.argv[3:]))
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes_write_one_run_record(tmp_path, tiny):
    """One record from two gloo ranks, test rows in study order, and the single-process gradient.

    ``test_convnext`` has parameters the loss never reaches (DDP must still all-reduce the rest) and
    no BatchNorm; without dropout the first step's gradient must equal one process's.
    """
    sets = {**tiny, "encoder.backbone": "test_convnext", "encoder.dropout": 0, "decoder.dropout": 0,
            "dataset.n_test": 11, "data.eval_batch_size": 4, "decode.max_len": 12}
    args = ["run", "--model", "transformer", "--dataset", "synthetic", "--epochs", "1", "--device", "cpu",
            "--skip", "meteor", "--no-progress", "--efficiency", "off",
            *(arg for key, value in sets.items() if key != "train.epochs" for arg in ("--set", f"{key}={value}"))]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
         str(tmp_path / "ddp.pt"), "go", *args, "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    [record_file] = list((tmp_path / "runs").rglob("results.json"))
    assert len(list((tmp_path / "runs").rglob("config.json"))) == 1
    assert result.stdout.count("results: ") == 1  # rank 0 alone prints
    run = record_file.parent
    record = json.loads(record_file.read_text())
    assert record["protocol"]["processes"] == 2 and record["protocol"]["splits"]["test"] == 11
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    rows = [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"synth-test-{i:05d}" for i in range(11)]  # study order, no duplicate
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in log].count("validate") == 1  # one writer
    meta = json.loads((run / "checkpoints" / "last.json").read_text())
    assert meta["world_size"] == 2 and meta["step"] == 2

    single = subprocess.run([sys.executable, str(driver), str(tmp_path / "one.pt"), "stop", *args, "--out",
                             str(tmp_path / "single")], capture_output=True, text=True, timeout=600, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    import torch

    ddp, one = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert [g is None for g in ddp] == [g is None for g in one]
    pairs = [(a, b) for a, b in zip(ddp, one, strict=True) if a is not None]
    difference = sum(float((a - b).norm()) ** 2 for a, b in pairs) ** 0.5
    assert difference <= 1e-5 * sum(float(b.norm()) ** 2 for _, b in pairs) ** 0.5
