"""Bad-input battery for ``rrgbench run``, ``evaluate`` and ``predict`` (harness: tests/battery.py).

One tiny run (one training step on 12 synthetic studies per split) is trained once for the module; the
cases that damage it work on copies. Every other case fails at validation, before any training.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from battery import Battery
from conftest import TINY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SMALL = {**TINY, "encoder.backbone": "regnetx_002", "train.max_steps_per_epoch": 1}
GENERATED = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))


def sets(overrides: dict) -> list[str]:
    return [part for key, value in overrides.items() for part in ("--set", f"{key}={value}")]


BASE = ["--device", "cpu", "--no-progress", "--efficiency", "off", "--skip", "meteor"]


def run(*extra: str, model: str = "transformer", out: str = "runs", **overrides) -> list[str]:
    return ["run", "--model", model, "--out", out, *BASE, *sets({**SMALL, **overrides}), *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny run (its folder); cases never change it (a final test checks)."""
    root = tmp_path_factory.mktemp("trained")
    Battery(root, "run").ok(run(), outputs=["runs"], case="tiny training run",
                            check=lambda r: None if list(Path("runs").rglob("results.json")) else "no record")
    [record] = list(root.rglob("results.json"))
    return record.parent


@pytest.fixture
def ws(tmp_path) -> Path:
    (tmp_path / "afile.txt").write_text("a file\n")
    return tmp_path


def copy_run(trained: Path, ws: Path, status: str = "interrupted") -> Path:
    """A copy of the trained run in ``ws/runs`` marked ``status`` (so that --resume continues it)."""
    target = ws / "runs" / trained.relative_to(trained.parents[2])
    shutil.copytree(trained, target)
    (target / "status.json").write_text(json.dumps({"status": status}))
    return target


# -------------------------------------------------------------------------------------------------- run
RUN_ERRORS = {
    "lr nan": (run(**{"train.lr": "nan"}), "finite"),
    "lr inf": (run(**{"train.lr": "inf"}), "finite"),
    "lr -inf": (run(**{"train.lr": "-inf"}), "finite"),
    "memory.size 1e12": (run(model="r2gencmn", **{"memory.size": "1e12"}), "above the maximum"),
    "memory.size x d_model over the cap": (run(model="r2gencmn", **{"memory.size": "4000000", "model.d_model":
                                                                    "2048"}), "estimated"),
    "d_model 1e9": (run(**{"model.d_model": "1e9"}), "d_model"),
    "batch size 1e9": (run(**{"data.batch_size": "1e9"}), "batch_size"),
    "n_train 1e12": (run(**{"dataset.n_train": "1e12"}), "n_train"),
    "beam 1e6": (run(**{"decode.beam_size": "1000000"}), "beam_size"),
    "negative epochs": (run(**{"train.epochs": "-1"}), "epochs"),
    "epochs 1e15": (run(**{"train.epochs": "1e15"}), "epochs"),
    "epochs 1.5": (run(**{"train.epochs": "1.5"}), "integer"),
    "negative seed": (run("--seed", "-1"), "seed"),
    "seed abc": (run("--seed", "abc"), "seed"),
    "seed over 2^32": (run("--seed", str(2**40)), "seed"),
    "seed only commas": (run("--seed", ",,"), "seed"),
    "unknown skip key": (run("--skip", "bleu_9"), "bleu_9"),
    "unknown labeler": (run("--labeler", "negbio"), "labeler"),
    "unknown section": (run(**{"nosuch.key": "1"}), "nosuch"),
    "typo in an option": (run(**{"train.lrr": "1"}), "did you mean"),
    "set without equals": (run("--set", "train.lr"), "key=value"),
    "bool that is not": (run(**{"train.amp": "maybe"}), "true/false"),
    "choice that is not": (run(**{"decode.method": "sample"}), "decode.method"),
    "bad loss weights": (run(**{"loss.weights": '{"align": "abc"}'}), "loss"),
    "loss weights not JSON": (run(**{"loss.weights": "{align"}), "JSON"),
    "unknown select metric": (run(**{"train.select_metric": "bleu_9"}), "bleu_9"),
    "negative workers": (run(**{"data.num_workers": "-2"}), "num_workers"),
    "model with mathtext": (run(model="$x$"), "unknown model"),
    "model with path": (run(model="../x"), "unknown model"),
    "dataset with path": (run("--dataset", "../x"), "unknown dataset"),
    "unknown profile": (run("--profile", "huge"), "profile"),
    "out is a file": (run(out="afile.txt"), "afile.txt"),
    "out below a file": (run(out="afile.txt/runs"), "afile.txt"),
    "resume nowhere": (run("--resume", "nowhere"), "nowhere"),
    "resume a file": (run("--resume", "afile.txt"), "afile.txt"),
    "resume nowhere without model": (["run", "--resume", "nowhere"], "nowhere"),
    "no model": (["run"], "--model"),
    "bad device": (run("--device", "tpu"), "device"),
    "epochs flag negative": (run("--epochs", "-1"), "epochs"),
    "epochs flag not a number": (run("--epochs", "x"), "epochs"),
    "bad efficiency": (run("--efficiency", "max"), "efficiency"),
    "iu-xray without data": (["run", "--model", "transformer", "--dataset", "iu-xray", "--data-dir", "nowhere"],
                             "nowhere"),
    "unknown plugin module": (["-p", "no_such_plugin_module", *run()], "no_such_plugin_module"),
}


@pytest.mark.parametrize("case", list(RUN_ERRORS))
def test_run_bad_input(ws, case):
    argv, message = RUN_ERRORS[case]
    Battery(ws, "run").error(argv, message, case=case)


def test_run_unwritable_out(ws):
    from test_battery_scoring import unwritable

    Battery(ws, "run").error(run(out=str(unwritable(ws))), "cannot create", case="out not writable")


@GENERATED
@given(key=st.sampled_from(["train.lr", "train.lr_visual", "train.beta1", "train.beta2", "train.gamma", "model.d_model",
                            "data.batch_size", "data.image_size", "decode.beam_size", "decoder.layers",
                            "decoder.heads", "dataset.n_train"]),
       value=st.one_of(st.sampled_from(["nan", "inf", "-inf", "-1e30", "1e300", "", "[]", "{}", "1e12", "none",
                                        "0x10", "1_0e400", "\x00", "true"]),
                       st.floats(allow_nan=True).filter(lambda v: v != v or abs(v) > 1e9).map(repr)))
def test_run_generated_bad_values(tmp_path_factory, key, value):
    """Non-finite, absurd or non-numeric values of numeric options: refused at validation, nothing written."""
    ws = tmp_path_factory.mktemp("gen")
    Battery(ws, "run").error(run(**{key: value}), key.split(".")[1], case=f"generated --set {key}={value!r}")


def test_plugin_exception_names_the_plugin_file_and_line(ws, fresh_plugins):
    import battery_plugin

    source = Path(battery_plugin.__file__)
    line = next(n for n, text in enumerate(source.read_text().splitlines(), 1) if "raise ValueError" in text)
    result = Battery(ws, "run").error(["-p", "battery_plugin", *run(model="transformer-exploding")],
                                      f"{source.name}, line {line}", outputs=["runs"],
                                      case="exception inside a plugin's component")
    assert "battery_plugin" in result.err and "the memory bank is on fire" in result.err
    [status] = list(ws.rglob("status.json"))
    recorded = json.loads(status.read_text())
    assert recorded["status"] == "failed" and "the memory bank is on fire" in recorded["traceback"]
    log = [json.loads(line) for line in (status.parent / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "failed" and "Traceback" in log[-1]["traceback"]


def test_debug_shows_the_traceback(ws, fresh_plugins):
    from rrgbench.cli import main

    with pytest.raises(ValueError, match="on fire"):
        main(["--debug", "-p", "battery_plugin", *run(model="transformer-exploding", out=str(ws / "runs"))])


def test_plugin_that_fails_to_import(ws, fresh_plugins, monkeypatch):
    (ws / "broken_plugin.py").write_text("import no_such_dependency_anywhere\n")
    monkeypatch.syspath_prepend(str(ws))
    Battery(ws, "run").error(["-p", "broken_plugin", *run()], "broken_plugin", case="plugin failing to import")


def test_plugin_raising_at_import(ws, fresh_plugins, monkeypatch):
    (ws / "raising_plugin.py").write_text("x = 1\nraise RuntimeError('misconfigured')\n")
    monkeypatch.syspath_prepend(str(ws))
    Battery(ws, "run").error(["-p", "raising_plugin", "plugins"], "raising_plugin", case="plugin raising at import")


def test_disk_full_during_a_run(ws, monkeypatch):
    from test_battery_scoring import disk_full_after

    disk_full_after(monkeypatch, 3)
    Battery(ws, "run").error(run(), "No space left", outputs=["runs"], case="disk full during a run")


# -------------------------------------------------------------------------------------------------- resume
def test_resume_a_finished_run_changes_nothing(trained, ws):
    Battery(ws, "run").ok(run("--resume", str(trained)), watch=trained, case="resume a finished run",
                          check=lambda r: None if "already finished" in r.out + r.err else r.out + r.err)


def test_resume_with_a_truncated_config(trained, ws):
    copy = copy_run(trained, ws)
    text = (copy / "config.json").read_text()
    (copy / "config.json").write_text(text[: len(text) // 2])
    battery = Battery(ws, "run")
    battery.error(["run", "--resume", str(copy)], "config.json", case="resume, truncated config.json")
    battery.error(run("--resume", str(copy)), "config.json", case="resume with --model, truncated config.json")
    (copy / "config.json").write_text("[]")
    battery.error(["run", "--resume", str(copy)], "config.json", case="resume, config.json a list")


def test_resume_with_a_different_config(trained, ws):
    copy = copy_run(trained, ws)
    Battery(ws, "run").error(run("--resume", str(copy), **{"train.lr": "0.5"}), "differs",
                             case="resume with another lr")


def test_resume_with_a_flipped_byte_refuses_and_best_survives(trained, ws):
    copy = copy_run(trained, ws)
    last, best = copy / "checkpoints" / "last.pt", copy / "checkpoints" / "best.pt"
    assert os.stat(last).st_ino != os.stat(best).st_ino  # best is its own file, not a link to last
    best_bytes = best.read_bytes()
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    Battery(ws, "run").error(run("--resume", str(copy)), "checksum", case="resume, byte-flipped last.pt")
    assert best.read_bytes() == best_bytes


def test_best_and_last_are_separate_files(trained):
    checkpoints = trained / "checkpoints"
    assert os.stat(checkpoints / "best.pt").st_ino != os.stat(checkpoints / "last.pt").st_ino


def test_resume_while_another_process_holds_the_run(trained, ws):
    from rrgbench.run.layout import RunDir

    copy = copy_run(trained, ws, status="running")
    holder = RunDir(copy)
    holder.lock()
    try:
        battery = Battery(ws, "run")
        battery.error(run("--resume", str(copy)), "running", case="resume DIR of a locked run")
        battery.error(run("--resume"), "running", case="resume auto of a locked run")
    finally:
        holder.unlock()


def test_resume_an_interrupted_run_finishes_it(trained, ws):
    copy = copy_run(trained, ws)
    (copy / "results.json").unlink()
    Battery(ws, "run").ok(run("--resume", str(copy)), outputs=[str(copy.relative_to(ws))],
                          check=lambda r: None if (copy / "results.json").is_file() else "no record",
                          case="resume an interrupted run")
    assert json.loads((copy / "status.json").read_text())["status"] == "finished"


def test_thirty_simultaneous_starts_get_thirty_folders(trained, tmp_path):
    """create_run from 30 threads at once (same config, same second): 30 folders, each locked by its creator."""
    from rrgbench.extension.plugins import registry
    from rrgbench.run.layout import RunDir, create_run

    config = RunDir(trained).config(registry())
    made, errors = [], []
    barrier = threading.Barrier(30)

    def start() -> None:
        try:
            barrier.wait()
            made.append(create_run(tmp_path, config))
        except BaseException as exc:  # the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len({run.path for run in made}) == 30
    assert all(run.locked_by_other() is False and RunDir(run.path).locked_by_other() for run in made)
    for run_dir in made:
        run_dir.unlock()


# -------------------------------------------------------------------------------------------------- evaluate
def evaluate(checkpoint: str, *extra: str, out: str = "evals") -> list[str]:
    return ["evaluate", "--checkpoint", checkpoint, "--out", out, "--device", "cpu", "--no-progress", "--skip",
            "meteor", *extra]


@pytest.fixture
def best(trained) -> str:
    return str(trained / "checkpoints" / "best.pt")


EVALUATE_ERRORS = {
    "checkpoint missing": (lambda best, ws: evaluate("nowhere.pt"), "nowhere.pt"),
    "checkpoint is a folder": (lambda best, ws: evaluate(str(ws)), "not found"),
    "train option at evaluation": (lambda best, ws: evaluate(best, "--set", "train.lr=1"), "train.lr"),
    "beam 0": (lambda best, ws: evaluate(best, "--set", "decode.beam_size=0"), "beam_size"),
    "beam nan": (lambda best, ws: evaluate(best, "--set", "decode.beam_size=nan"), "beam_size"),
    "unknown dataset": (lambda best, ws: evaluate(best, "--dataset", "chexpert"), "chexpert"),
    "iu-xray without data": (lambda best, ws: evaluate(best, "--dataset", "iu-xray", "--data-dir", "nowhere"),
                             "nowhere"),
    "out is a file": (lambda best, ws: evaluate(best, out="afile.txt"), "afile.txt"),
    "unknown skip key": (lambda best, ws: evaluate(best, "--skip", "rouge_x"), "rouge_x"),
    "unknown labeler": (lambda best, ws: evaluate(best, "--labeler", "negbio"), "negbio"),
}


@pytest.mark.parametrize("case", list(EVALUATE_ERRORS))
def test_evaluate_bad_input(best, ws, case):
    make, message = EVALUATE_ERRORS[case]
    Battery(ws, "evaluate").error(make(best, ws), message, case=case)


def test_evaluate_unwritable_out(best, ws):
    from test_battery_scoring import unwritable

    Battery(ws, "evaluate").error(evaluate(best, out=str(unwritable(ws))), "cannot create", case="out not writable")


def damaged_checkpoint(trained: Path, ws: Path, damage) -> str:
    folder = ws / "ckpt"
    folder.mkdir(exist_ok=True)
    for suffix in (".pt", ".json"):
        shutil.copy(trained / "checkpoints" / f"best{suffix}", folder / f"best{suffix}")
    damage(folder / "best.pt", folder / "best.json")
    return str(folder / "best.pt")


def _flip(pt: Path, meta: Path) -> None:
    data = bytearray(pt.read_bytes())
    data[100] ^= 1
    pt.write_bytes(bytes(data))


def _pickle_with_code(pt: Path, meta: Path) -> None:
    import hashlib
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {pt.parent / 'PWNED'}",))

    pt.write_bytes(pickle.dumps({"model": Payload()}))
    data = json.loads(meta.read_text())
    data["sha256"] = hashlib.sha256(pt.read_bytes()).hexdigest()
    meta.write_text(json.dumps(data))


def _rewrite_meta(text: str):
    def damage(pt: Path, meta: Path) -> None:
        meta.write_text(text)
    return damage


def _meta_without(key: str):
    def damage(pt: Path, meta: Path) -> None:
        data = json.loads(meta.read_text())
        del data[key]
        meta.write_text(json.dumps(data))
    return damage


@pytest.mark.parametrize("name, damage, message", [
    ("flipped byte", _flip, "checksum"),
    ("pickle carrying code", _pickle_with_code, "weights-only"),
    ("metadata not JSON", _rewrite_meta("{not json"), "JSON"),
    ("metadata a list", _rewrite_meta("[]"), "best.json"),
    ("metadata missing", lambda pt, meta: meta.unlink(), "metadata missing"),
    ("metadata without config", _meta_without("config"), "config"),
    ("empty payload", lambda pt, meta: pt.write_bytes(b""), "checksum"),
])
def test_evaluate_damaged_checkpoint(trained, ws, name, damage, message):
    checkpoint = damaged_checkpoint(trained, ws, damage)
    Battery(ws, "evaluate").error(evaluate(checkpoint), message, case=f"checkpoint: {name}")
    assert not (ws / "ckpt" / "PWNED").exists()


def test_evaluate_succeeds(best, ws):
    Battery(ws, "evaluate").ok(evaluate(best), outputs=["evals"], case="evaluate a checkpoint",
                               check=lambda r: None if list(Path("evals").rglob("results.json")) else "no record")


# -------------------------------------------------------------------------------------------------- predict
@pytest.fixture
def image(ws) -> str:
    from PIL import Image

    Image.new("L", (80, 80), color=128).save(ws / "study.png")
    return "study.png"


def predict(checkpoint: str, *images: str, extra: tuple[str, ...] = ()) -> list[str]:
    return ["predict", "--checkpoint", checkpoint, "--device", "cpu", *extra, *images]


def _truncated_png(ws: Path) -> str:
    data = (ws / "study.png").read_bytes()
    (ws / "cut.png").write_bytes(data[: len(data) // 2])
    return "cut.png"


PREDICT_ERRORS = {
    "image missing": (lambda ws: ["nowhere.png"], (), "nowhere.png"),
    "image is text": (lambda ws: ["afile.txt"], (), "afile.txt"),
    "image is a folder": (lambda ws: [str(ws)], (), "directory"),
    "image empty": (lambda ws: [((ws / "empty.png").write_bytes(b"") and "empty.png") or "empty.png"], (), "empty"),
    "image truncated": (lambda ws: [_truncated_png(ws)], (), "cut.png"),
    "two images for a one-view model": (lambda ws: ["study.png", "study.png"], (), "image"),
    "beam nan": (lambda ws: ["study.png"], ("--set", "decode.beam_size=nan"), "beam_size"),
    "train option": (lambda ws: ["study.png"], ("--set", "train.lr=1"), "train.lr"),
    "set without equals": (lambda ws: ["study.png"], ("--set", "decode"), "key=value"),
}


@pytest.mark.parametrize("case", list(PREDICT_ERRORS))
def test_predict_bad_input(best, ws, image, case):
    images, extra, message = PREDICT_ERRORS[case]
    Battery(ws, "predict").error(predict(best, *images(ws), extra=extra), message, case=case)


def test_predict_missing_checkpoint(ws, image):
    Battery(ws, "predict").error(predict("nowhere.pt", image), "nowhere.pt", case="checkpoint missing")


def test_predict_succeeds(best, ws, image):
    from PIL import Image

    Image.new("RGB", (1, 1)).save(ws / "tiny.jpg")
    battery = Battery(ws, "predict")
    battery.ok(predict(best, image), case="predict one study", check=lambda r: None if r.out.strip() else "empty")
    battery.ok(predict(best, "tiny.jpg"), case="predict a 1x1 JPEG", check=lambda r: None)


@GENERATED
@given(raw=st.binary(max_size=400))
def test_predict_generated_image_bytes(trained, tmp_path_factory, raw):
    ws = tmp_path_factory.mktemp("gen")
    (ws / "x.png").write_bytes(raw)
    Battery(ws, "predict").error(predict(str(trained / "checkpoints" / "best.pt"), "x.png"), "x.png",
                                 case=f"generated image bytes {raw[:16]!r}")


def test_trained_run_unchanged_by_every_case(trained):
    """The module's run was only read: still finished, its checkpoints verify."""
    from rrgbench.run.checkpoint import load_checkpoint

    assert json.loads((trained / "status.json").read_text())["status"] == "finished"
    for name in ("best.pt", "last.pt"):
        load_checkpoint(trained / "checkpoints" / name)
