"""Bad-input battery for ``list``, ``plugins``, ``data prepare|validate``, suite files, ``leaderboard`` (its CLI
surface only) and the error boundary itself: a full disk (RLIMIT_FSIZE), kill -9 mid-write, out of memory.
"""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path

import pytest
from battery import Battery, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_battery_scoring import REPORTS, score, write_csv

GENERATED = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def ws(tmp_path) -> Path:
    (tmp_path / "afile.txt").write_text("a file\n")
    return tmp_path


# -------------------------------------------------------------------------------------------------- list, plugins
LIST_ERRORS = {
    "unknown kind": (["list", "gadgets"], "gadgets"),
    "options of an unknown model": (["list", "options", "--model", "transfomer"], "did you mean"),
    "options on an unknown dataset": (["list", "options", "--dataset", "chexpert"], "chexpert"),
    "unknown plugin module": (["-p", "no_such_plugin_module", "list", "models"], "no_such_plugin_module"),
}


@pytest.mark.parametrize("case", list(LIST_ERRORS))
def test_list_bad_input(ws, case):
    argv, message = LIST_ERRORS[case]
    Battery(ws, "list").error(argv, message, case=case)


@pytest.mark.parametrize("argv, needle", [
    (["list", "models"], "transformer"),
    (["list", "models", "["], ""),
    (["list", "options", "memory.*", "--model", "r2gencmn"], "memory.size"),
    (["list", "labelers", "--options"], "chexpert-rules"),
    (["list", "components"], "encoders:"),
])
def test_list_succeeds(ws, argv, needle):
    Battery(ws, "list").ok(argv, case=" ".join(argv), check=lambda r: None if needle in r.out else r.out[-200:])


def test_plugins_succeeds(ws):
    Battery(ws, "plugins").ok(["plugins"], case="plugins",
                              check=lambda r: None if "builtins" in r.out else r.out[-200:])


def test_plugins_from_a_bad_environment_variable(ws, fresh_plugins, monkeypatch):
    from rrgbench.extension import plugins

    monkeypatch.setenv("RRGBENCH_PLUGINS", "no_such_plugin_module,another")
    plugins.reset()  # the host is built again, from the environment
    Battery(ws, "plugins").error(["plugins"], "no_such_plugin_module", case="RRGBENCH_PLUGINS naming nothing")


def test_plugins_with_a_plugin_that_fails_to_import(ws, fresh_plugins, monkeypatch):
    (ws / "half_plugin.py").write_text("from rrgbench import hookimpl\n\nraise KeyError('setting')\n")
    monkeypatch.syspath_prepend(str(ws))
    Battery(ws, "plugins").error(["-p", "half_plugin", "plugins"], "half_plugin.py, line 3",
                                 case="plugin raising at import names its line")


# -------------------------------------------------------------------------------------------------- data validate
VALID = object()


def data_folder(root: Path, annotation=VALID, info=None) -> Path:
    """A one-view (mimic-cxr shaped) data folder: images/, annotation.json, optionally rrgbench.json.

    The valid annotation has two training studies (a.png, d.png), one validation and one test study.
    """
    folder = root / "data"
    (folder / "images").mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        Image.new("L", (32, 32), 100).save(folder / "images" / name)
    if annotation is VALID:
        def study(split: str, name: str) -> dict:
            return {"id": name[0], "report": "the lungs are clear .", "image_path": [name], "split": split}
        annotation = {"train": [study("train", "a.png"), study("train", "d.png")], "val": [study("val", "b.png")],
                      "test": [study("test", "c.png")]}
    text = annotation if isinstance(annotation, (str, bytes)) else json.dumps(annotation)
    (folder / "annotation.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    if info is not None:
        (folder / "rrgbench.json").write_text(info if isinstance(info, str) else json.dumps(info))
    return folder


def validate(*extra: str) -> list[str]:
    return ["data", "validate", "mimic-cxr", "--data-dir", "data", *extra]


def _study(path):
    return {split: [{"id": f"{split}1", "report": "clear .", "image_path": [path], "split": split}]
            for split in ("train", "val", "test")}


VALIDATE_ERRORS = {
    "no folder": (None, None, ["data", "validate", "mimic-cxr", "--data-dir", "nowhere"], "nowhere"),
    "annotation not JSON": ("{oops", None, validate(), "malformed JSON"),
    "annotation not UTF-8": (b'{"train": "\xff"}', None, validate(), "UTF-8"),
    "annotation a list": ("[]", None, validate(), "JSON object"),
    "annotation without splits": ('{"train": []}', None, validate(), "missing split"),
    "image path escaping": (_study("../../../etc/hostname"), None, validate(), "problems"),
    "absolute image path": (_study("/etc/hostname"), None, validate(), "problems"),
    "image root is /": (_study("etc/hostname"), {"dataset": "mimic-cxr", "image_root": "/"}, validate(),
                        "file system's root"),
    "rrgbench.json not JSON": (None, "{", validate(), "rrgbench.json"),
    "rrgbench.json without image_root": (None, {"dataset": "mimic-cxr"}, validate(), "image_root"),
    "rrgbench.json image_root a number": (None, {"image_root": 5}, validate(), "image_root"),
    "rrgbench.json image_root missing": (None, {"image_root": "/nowhere/at/all"}, validate(), "/nowhere/at/all"),
    "unknown dataset": (None, None, ["data", "validate", "chexpert", "--data-dir", "data"], "chexpert"),
}


@pytest.mark.parametrize("case", list(VALIDATE_ERRORS))
def test_validate_bad_input(ws, case):
    annotation, info, argv, message = VALIDATE_ERRORS[case]
    data_folder(ws, VALID if annotation is None else annotation, info)
    result = Battery(ws, "data validate").error(argv, message, case=case)
    if message == "problems":  # the report lists every problem under its one error line
        assert "image root" in result.err and "/etc/hostname" in result.err


def test_validate_symlink_out_of_the_root(ws):
    folder = data_folder(ws, _study("link.png"))
    (folder / "images" / "link.png").symlink_to("/etc/hostname")
    result = Battery(ws, "data validate").error(validate(), "problem", case="symlinked image pointing out")
    assert "image root" in result.err


def test_validate_image_dir_option_at_root(ws):
    data_folder(ws, _study("etc/hostname"))
    argv = ["run", "--model", "transformer", "--dataset", "mimic-cxr", "--data-dir", "data", "--set",
            "dataset.image_dir=/", "--device", "cpu"]
    Battery(ws, "run").error(argv, "file system's root", case="dataset.image_dir=/")


def test_validate_succeeds(ws):
    data_folder(ws)
    battery = Battery(ws, "data validate")
    battery.ok(validate(), case="valid folder", check=lambda r: None if "ok (train 2, val 1" in r.out else r.out)
    (ws / "data" / "images" / "a.png").unlink()
    battery.ok(validate("--allow-missing"), case="missing image with --allow-missing",
               check=lambda r: None if "1 studies skipped" in r.out else r.out)


@GENERATED
@given(data=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                             st.sampled_from(["train", "val", "test", "id", "report", "image_path", "x"]), inner,
                             max_size=4), max_leaves=15))
def test_validate_generated_annotations(tmp_path_factory, data):
    """Arbitrary JSON as annotation.json: never an annotation with a study in every split, always refused."""
    ws = tmp_path_factory.mktemp("gen")
    data_folder(ws, data)
    Battery(ws, "data validate").error(validate(), None, case=f"generated annotation {json.dumps(data)[:40]}")


# -------------------------------------------------------------------------------------------------- data prepare
def iu_folders(ws: Path) -> None:
    (ws / "reports").mkdir()
    (ws / "images").mkdir()
    for n in range(3):
        (ws / "reports" / f"{n}.xml").write_text(
            f'<eCitation><AbstractText Label="FINDINGS">Lungs are clear {n}.</AbstractText>'
            f'<parentImage id="CXR{n}_IM-000{n}-1001"/><parentImage id="CXR{n}_IM-000{n}-2001"/></eCitation>')


def prepare_iu(*extra: str, out: str = "prepared") -> list[str]:
    return ["data", "prepare", "iu-xray", "--reports", "reports", "--images", "images", "--out", out, *extra]


PREPARE_ERRORS = {
    "reports missing": (["data", "prepare", "iu-xray", "--reports", "nowhere", "--images", "images", "--out", "p"],
                        "nowhere"),
    "reports is a file": (["data", "prepare", "iu-xray", "--reports", "afile.txt", "--images", "images", "--out",
                           "p"], "afile.txt"),
    "out is a file": (prepare_iu(out="afile.txt"), "afile.txt"),
    "out below a file": (prepare_iu(out="afile.txt/p"), "afile.txt"),
    "out holds R2Gen's annotation": (prepare_iu(out="r2gen"), "--force"),
    "seed not a number": (prepare_iu("--seed", "x"), "seed"),
    "mimic split csv missing": (["data", "prepare", "mimic-cxr", "--reports", "reports", "--images", "images",
                                 "--split-csv", "nowhere.csv", "--out", "p"], "nowhere.csv"),
    "mimic split csv not UTF-8": (["data", "prepare", "mimic-cxr", "--reports", "reports", "--images", "images",
                                   "--split-csv", "latin1.csv", "--out", "p"], "latin1.csv"),
    "mimic ids with a path": (["data", "prepare", "mimic-cxr", "--reports", "reports", "--images", "images",
                               "--split-csv", "evil.csv", "--out", "p"], "plain id"),
    "bad section": (["data", "prepare", "mimic-cxr", "--reports", "reports", "--images", "images",
                     "--split-csv", "evil.csv", "--out", "p", "--section", "all"], "section"),
}


@pytest.mark.parametrize("case", list(PREPARE_ERRORS))
def test_prepare_bad_input(ws, case):
    iu_folders(ws)
    (ws / "r2gen").mkdir()
    (ws / "r2gen" / "annotation.json").write_text('{"train": [], "val": [], "test": []}')
    (ws / "latin1.csv").write_bytes("dicom_id,study_id,subject_id,split\nd\xe9,1,2,train\n".encode("latin-1"))
    (ws / "evil.csv").write_text("dicom_id,study_id,subject_id,split\nd1,1,../../etc,train\n")
    argv, message = PREPARE_ERRORS[case]
    Battery(ws, "data prepare").error(argv, message, case=case)


def test_prepare_xml_bomb_is_refused(ws):
    iu_folders(ws)
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 9))
    (ws / "reports" / "bomb.xml").write_text(f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY l0 "lol">{lol}]>'
                                              '<eCitation><AbstractText Label="FINDINGS">&l8;</AbstractText>'
                                              "</eCitation>")
    Battery(ws, "data prepare").error(prepare_iu(), "bomb.xml", case="billion-laughs XML report")


def test_prepare_succeeds_and_replaces_its_own_output(ws):
    iu_folders(ws)
    battery = Battery(ws, "data prepare")
    battery.ok(prepare_iu(), outputs=["prepared"], case="prepare iu-xray",
               check=lambda r: None if Path("prepared/annotation.json").is_file() else "no annotation")
    battery.ok(prepare_iu("--seed", "1"), outputs=["prepared"], case="prepare again into its own output")
    (ws / "r2gen").mkdir()
    (ws / "r2gen" / "annotation.json").write_text("{}")
    battery.ok(prepare_iu("--force", out="r2gen"), outputs=["r2gen"], case="replace R2Gen's file with --force")


# -------------------------------------------------------------------------------------------------- suite files
SUITE_ERRORS = {
    "threads abc": ("models: [transformer]\nthreads: abc\n", "threads"),
    "name with a path": ("name: ../../x\nmodels: [transformer]\n", "suite name"),
    "name with mathtext": ("name: $\\alpha$\nmodels: [transformer]\n", "suite name"),
    "not YAML": ("models: [transformer\n", "YAML"),
    "python object tag": ("models: !!python/object/apply:os.system ['touch PWNED']\n", "YAML"),
    "no models": ("name: x\n", "models"),
    "models not a list": ("models: 3\n", "models"),
    "unknown key": ("models: [transformer]\nthread: 2\n", "thread"),
    "unknown model": ("models: [transfomer]\n", "did you mean"),
    "negative seed": ("models: [transformer]\nseeds: [-1]\n", "seed"),
    "seeds not numbers": ("models: [transformer]\nseeds: [a]\n", "seeds"),
    "nan override": ("models:\n  - model: transformer\n    overrides: {train.lr: .nan}\n", "finite"),
    "absurd override": ("models:\n  - model: r2gencmn\n    overrides: {memory.size: 1e12}\n", "maximum"),
    "unknown dataset": ("models: [transformer]\ndatasets: ['../x']\n", "unknown dataset"),
    "bad efficiency": ("models: [transformer]\nefficiency: max\n", "efficiency"),
    "a list, not a mapping": ("- transformer\n", "mapping"),
}


@pytest.mark.parametrize("case", list(SUITE_ERRORS))
def test_suite_file_bad_input(ws, case):
    text, message = SUITE_ERRORS[case]
    (ws / "suite.yaml").write_text(text)
    Battery(ws, "suite").error(["suite", "suite.yaml", "--dry-run"], message, case=case)
    assert not (ws / "PWNED").exists()


def test_suite_file_missing_or_not_a_file(ws):
    battery = Battery(ws, "suite")
    battery.error(["suite", "nowhere.yaml", "--dry-run"], "nowhere.yaml", case="suite file missing")
    battery.error(["suite", str(ws), "--dry-run"], None, case="suite file is a folder")


def test_suite_dry_run_succeeds(ws):
    (ws / "suite.yaml").write_text("name: tiny\nmodels: [transformer, show-tell]\nseeds: [0, 1]\n")
    Battery(ws, "suite").ok(["suite", "suite.yaml", "--dry-run"], case="valid suite, dry run",
                            check=lambda r: None if "4 runs" in r.out else r.out)


# -------------------------------------------------------------------------------------------------- leaderboard (CLI)
def test_leaderboard_output_problems(ws):
    from record_factory import make_record, save

    save(ws / "runs" / "a", make_record("transformer"))
    battery = Battery(ws, "leaderboard")
    battery.error(["leaderboard", "--runs", "runs", "--out", "afile.txt", "--no-plots"], "afile.txt",
                  case="leaderboard --out is a file")
    battery.error(["leaderboard", "--check", "--suite", "nowhere.yaml", "--out", "lb"], "nowhere.yaml",
                  case="leaderboard --check with a missing suite")


def test_leaderboard_never_writes_where_a_record_points(ws):
    """A record whose dataset name climbs out of --out is refused where records are read (rrgbench.record)."""
    from record_factory import make_record, save

    save(ws / "runs" / "a", make_record("transformer"))
    bad = make_record("transformer")
    bad.dataset = "../../escaped"
    save(ws / "runs" / "b", bad)
    Battery(ws, "leaderboard").run(["leaderboard", "--runs", "runs", "--out", "lb", "--no-plots"], "safe",
                                   outputs=["lb"], case="record with dataset '../../escaped'")
    assert not (ws.parent / "escaped").exists() and not (ws / "escaped").exists()


# -------------------------------------------------------------------------------------------------- the boundary
@pytest.fixture
def scored(ws, monkeypatch) -> Path:
    empty = ws / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("RRGBENCH_RADGRAPH", str(empty))
    monkeypatch.setenv("RRGBENCH_CHEXBERT", str(empty / "chexbert.pth"))
    write_csv(ws / "preds.csv", REPORTS)
    write_csv(ws / "refs.csv", REPORTS)
    Battery(ws, "score").ok(score(), outputs=["scored"], case="score (before the boundary cases)")
    return ws


def _file_size_limit(limit: int):
    def prepare() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return prepare


@pytest.mark.parametrize("limit", [0, 2000])
def test_file_size_limit_is_one_line_and_keeps_the_previous_output(scored, limit):
    before = {p.name: p.read_bytes() for p in (scored / "scored").iterdir()}
    Battery(scored, "score").error(score("--name", "other"), "File too large", fork=_file_size_limit(limit),
                                   case=f"RLIMIT_FSIZE {limit} bytes (disk full) during score")
    assert {p.name: p.read_bytes() for p in (scored / "scored").iterdir()} == before
    assert [p.name for p in scored.iterdir() if p.name.startswith(".")] == []


def test_file_size_limit_during_label(scored):
    Battery(scored, "label").error(["label", "refs.csv", "--out", "labels.csv"], "File too large",
                                   fork=_file_size_limit(100), case="RLIMIT_FSIZE during label")


def _killed_at_write(n: int):
    """Simulate kill -9 at the n-th atomic write (every file rrgbench writes is one): the process ends there."""
    def prepare() -> None:
        import rrgbench.io

        real, count = rrgbench.io.atomic_write, {"n": 0}

        def write(*args, **kwargs):
            count["n"] += 1
            if count["n"] == n:
                os._exit(137)
            return real(*args, **kwargs)

        rrgbench.io.atomic_write = write
    return prepare


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_kill_during_score_leaves_old_or_new_never_a_mix(scored, n):
    from battery import invoke_forked

    old = {p.name: p.read_bytes() for p in (scored / "scored").iterdir()}
    write_csv(scored / "other.csv", {k: "no acute findings ." for k in REPORTS})
    cwd = os.getcwd()
    os.chdir(scored)
    try:
        result = invoke_forked(score("--name", "other", preds="other.csv"), _killed_at_write(n))
    finally:
        os.chdir(cwd)
    now = {p.name: p.read_bytes() for p in (scored / "scored").iterdir()}
    record = json.loads(now["results.json"])
    assert now == old or (record["model"] == "other" and set(now) == set(old)), (n, result.code, sorted(now))


def test_out_of_memory_is_one_line(scored, monkeypatch):
    import rrgbench.scoring.external

    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(rrgbench.scoring.external, "score", exhausted)
    Battery(scored, "score").error(score("--name", "other"), "out of memory", case="MemoryError while scoring")


def test_a_bug_is_one_line_naming_the_place_and_debug_raises(scored, monkeypatch):
    import rrgbench.scoring.external

    def bug(*args, **kwargs):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(rrgbench.scoring.external, "match_reports", bug)
    monkeypatch.chdir(scored)
    result = invoke(score("--name", "other"))
    assert result.code == 1 and result.escaped is None and "Traceback" not in result.err
    [line] = result.err.splitlines()
    assert line.startswith("error: internal error: TypeError: unsupported operand (") and "--debug" in line
    assert "test_battery_misc.py" not in line  # the place is rrgbench's own innermost frame
    result = invoke(["--debug", *score("--name", "other")])
    assert isinstance(result.escaped, TypeError)


# -------------------------------------------------------------------------------------------------- the harness
def test_the_harness_catches_what_it_counts(ws):
    """The classifier sees tracebacks, internal errors, vague errors, silent acceptance and changed files."""
    from battery import Result, changed, classify, tree

    def kind(result, expect="error", message=None, lost=()):
        return classify(result, expect, message, None, list(lost)).kind

    assert kind(Result(None, "", "", escaped=ValueError("x"))) == "traceback"
    assert kind(Result(1, "", "Traceback (most recent call last):\n  ...\nValueError: x\n")) == "traceback"
    assert kind(Result(1, "", "error: internal error: TypeError: x (a.py, line 1)\n")) == "traceback"
    assert kind(Result(2, "", "error: one\nerror: two\n")) == "unclear_error"
    assert kind(Result(2, "", "error: unknown option\n"), message="seed") == "unclear_error"
    assert kind(Result(2, "", "error: bad seed\n"), message="seed") == "clean_error"
    assert kind(Result(0, "fine", "")) == "silent_accept"
    assert kind(Result(2, "", "error: x\n"), lost=["input.csv"]) == "data_loss"
    before = tree(ws)
    (ws / "afile.txt").write_text("changed\n")
    (ws / "new").mkdir()
    assert changed(before, tree(ws), ["new"]) == ["afile.txt"]
