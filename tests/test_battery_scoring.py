"""Bad-input battery for ``rrgbench score``, ``label`` and ``compare`` (harness: tests/battery.py).

Every case asserts the exit code, a single ``error:`` line without traceback (or a correct success), and that
nothing outside the intended output changed.
"""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest
from battery import Battery
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_files import write_csv, write_jsonl

FAST = ["--skip", "meteor", "--resamples", "20"]
REPORTS = {"s1": "The heart size is normal. No pleural effusion.", "s2": "Mild cardiomegaly. Small left effusion.",
           "s3": "Lungs are clear.", "s4": "Moderate pulmonary edema."}
SCORE_FILES = ("results.json", "predictions.jsonl", "scores.jsonl", "ce_per_observation.csv")
GENERATED = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))




@pytest.fixture(autouse=True)
def no_weights(monkeypatch, tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-weights")
    monkeypatch.setenv("RRGBENCH_RADGRAPH", str(empty))
    monkeypatch.setenv("RRGBENCH_CHEXBERT", str(empty / "chexbert.pth"))


@pytest.fixture
def ws(tmp_path) -> Path:
    """A workspace: good report files, bad ones, a finished training run and a foreign folder."""
    write_csv(tmp_path / "preds.csv", REPORTS)
    write_csv(tmp_path / "refs.csv", REPORTS)
    write_jsonl(tmp_path / "refs.jsonl", REPORTS)
    (tmp_path / "latin1.csv").write_bytes("id,report\ns1,caf\xe9 normal\n".encode("latin-1"))
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "s1", "report": "caf\xe9"}\n')
    write_csv(tmp_path / "huge.csv", {**REPORTS, "s1": "normal " * 30_000})
    (tmp_path / "afile.txt").write_text("not a folder\n")
    run = tmp_path / "runs" / "synthetic" / "transformer" / "20260101-000000-abc-s0"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"model": "transformer"}\n')
    (run / "status.json").write_text('{"status": "finished"}\n')
    (run / "predictions.jsonl").write_text(json.dumps({"id": "s1", "prediction": "x", "reference": "y"}) + "\n")
    (run / "results.json").write_text('{"kind": "training"}\n')
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my own notes\n")
    return tmp_path


def score(*extra: str, preds: str = "preds.csv", refs: str = "refs.csv", out: str = "scored") -> list[str]:
    return ["score", "--predictions", preds, "--references", refs, "--out", out, *FAST, *extra]


def has_record(folder: str, model: str | None = None):
    def check(result) -> str | None:
        path = Path(folder) / "results.json"
        if not path.is_file():
            return f"no {path}"
        record = json.loads(path.read_text())
        if model is not None and record["model"] != model:
            return f"model {record['model']!r}"
        return None
    return check


def unwritable(root: Path) -> Path:
    """A folder this process cannot create files in (a read-only folder, or /sys for root), else skip."""
    folder = root / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    if not os.access(folder, os.W_OK):
        return folder / "out"
    if os.path.isdir("/sys") and not os.access("/sys", os.W_OK):
        return Path("/sys/rrgbench-battery")
    try:
        os.mkdir("/sys/rrgbench-battery")
    except OSError:
        return Path("/sys/rrgbench-battery")
    os.rmdir("/sys/rrgbench-battery")
    pytest.skip("no unwritable folder available")


def disk_full_after(monkeypatch, writes: int) -> None:
    """Every atomic write after the first ``writes`` fails with ENOSPC (the disk is full)."""
    import rrgbench.io

    real = rrgbench.io.os.fsync
    count = {"n": 0}

    def fsync(fd: int) -> None:
        count["n"] += 1
        if count["n"] > writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(rrgbench.io.os, "fsync", fsync)


# -------------------------------------------------------------------------------------------------- score
SCORE_ERRORS = {
    "non-utf8 predictions": (score(preds="latin1.csv"), "UTF-8"),
    "non-utf8 references jsonl": (score(refs="latin1.jsonl"), "UTF-8"),
    "csv field over 128 KB": (score(preds="huge.csv"), "field"),
    "out is a file": (score(out="afile.txt"), "afile.txt"),
    "out is a training run": (score(out="runs/synthetic/transformer/20260101-000000-abc-s0"), "run"),
    "out is a training run, --force": (score("--force", out="runs/synthetic/transformer/20260101-000000-abc-s0"),
                                       "run"),
    "out is a runs folder": (score(out="runs"), "--force"),
    "out is a foreign folder": (score(out="mine"), "--force"),
    "out below a file": (score(out="afile.txt/scored"), "afile.txt"),
    "name with path": (score("--name", "../evil"), "name"),
    "name with mathtext": (score("--name", "$\\frac{a}{b}$"), "name"),
    "dataset with path": (score("--dataset", "../../etc"), "dataset"),
    "dataset absolute": (score("--dataset", "/tmp/x"), "dataset"),
    "resamples 0": (score("--resamples", "0"), "resamples"),
    "resamples absurd": (score("--resamples", "1000000000"), "resamples"),
    "negative seed": (score("--seed", "-1"), "seed"),
    "unknown skip key": (score("--skip", "bleu_5"), "bleu_5"),
    "unknown labeler": (score("--labeler", "chexpert-rulez"), "did you mean"),
    "unknown column": (score("--column", "text"), "text"),
    "missing predictions": (score(preds="nope.csv"), "nope.csv"),
    "predictions is a folder": (score(preds="mine"), "mine"),
    "unknown suffix": (score(preds="afile.txt"), "format"),
    "bad uncertain": (score("--uncertain", "maybe"), "uncertain"),
    "bad clean": (score("--clean", "all"), "clean"),
}


@pytest.mark.parametrize("case", list(SCORE_ERRORS))
def test_score_bad_input(ws, case):
    argv, message = SCORE_ERRORS[case]
    Battery(ws, "score").error(argv, message, case=case)


@pytest.mark.parametrize("content, message", [
    ("", "no reports"),
    ("id,report\n", "no reports"),
    ("id,report\ns1,a\ns1,b\n", "duplicated"),
    ("id,report\ns9,a\n", "no id in common"),
    ("id,report\ns1,a\ns9,b\n", "--allow-partial"),
    ("report\nfoo\n", "'id'"),
    ("\x00\x01\x02garbage", None),
    ('id,report\ns1,"unterminated\n', None),
])
def test_score_malformed_csv(ws, content, message):
    (ws / "bad.csv").write_text(content, encoding="utf-8")
    Battery(ws, "score").error(score(preds="bad.csv"), message, case=f"predictions {content[:30]!r}")


@pytest.mark.parametrize("content, message", [
    ("[1, 2]\n", "JSON object"),
    ('{"id": "s1", "report": {"a": 1}}\n', "expected text"),
    ('{"id": "s1", "report": "a"}\n{"id": \n', "not JSON"),
    ('{"id": null, "report": "a"}\n', "id"),
    ('{"id": true, "report": "a"}\n', "id"),
    ('"just a string"\n', "JSON object"),
])
def test_score_malformed_jsonl(ws, content, message):
    (ws / "bad.jsonl").write_text(content, encoding="utf-8")
    Battery(ws, "score").error(score(preds="bad.jsonl"), message, case=f"predictions {content[:30]!r}")


def test_score_blank_references(ws):
    write_csv(ws / "blank.csv", {**REPORTS, "s2": "   "})
    Battery(ws, "score").error(score(refs="blank.csv"), "blank", case="blank reference")


@pytest.mark.parametrize("preds, refs, extra", [
    ("preds.csv", "refs.csv", []),
    ("preds.csv", "refs.jsonl", ["--clean", "iu-xray"]),
    ("preds.csv", "preds.csv", ["--clean", "whitespace"]),
])
def test_score_succeeds(ws, preds, refs, extra):
    Battery(ws, "score").ok(score(*extra, preds=preds, refs=refs), outputs=["scored"], check=has_record("scored"),
                           case=f"{preds} vs {refs} {' '.join(extra)}")


def test_score_chexbert_without_weights_records_why(ws):
    def check(result) -> str | None:
        entry = json.loads(Path("scored/results.json").read_text())["metrics"]["ce_f1_micro"]
        return None if entry["value"] is None and "CheXbert" in entry["unavailable"] else f"ce_f1_micro {entry}"

    Battery(ws, "score").ok(score("--labeler", "chexbert"), outputs=["scored"], check=check,
                            case="chexbert labeler without weights: CE metrics unavailable with the reason")


def test_score_bom_tsv_and_partial(ws):
    (ws / "p.tsv").write_bytes("\ufeffid\treport\ns1\tnormal\ns2\tclear\ns9\textra\n".encode())
    Battery(ws, "score").ok(score("--allow-partial", preds="p.tsv"), outputs=["scored"], check=has_record("scored"),
                            case="BOM TSV with --allow-partial")


def test_score_unsafe_file_stem_gives_a_safe_default_name(ws):
    write_csv(ws / "my system (v2).csv", REPORTS)
    Battery(ws, "score").ok(score(preds="my system (v2).csv"), outputs=["scored"],
                            check=has_record("scored", "my-system-v2"), case="file stem with spaces")


def test_score_replaces_its_own_previous_output_as_a_whole(ws):
    battery = Battery(ws, "score")
    battery.ok(score(), outputs=["scored"], check=has_record("scored"), case="first score")
    (ws / "scored" / "stale.csv").write_text("from an older version\n")
    write_csv(ws / "other.csv", {k: "no finding ." for k in REPORTS})
    battery.ok(score("--name", "second", preds="other.csv"), outputs=["scored"],
               check=has_record("scored", "second"), case="rescore into a previous score output")
    assert not (ws / "scored" / "stale.csv").exists()  # a set of files from one scoring, not a mix
    assert [p.name for p in ws.iterdir() if p.name.startswith(".")] == []


def test_score_into_a_foreign_folder_with_force_keeps_its_files(ws):
    Battery(ws, "score").ok(score("--force", out="mine"), outputs=[f"mine/{n}" for n in SCORE_FILES],
                            check=has_record("mine"), case="foreign folder with --force")
    assert (ws / "mine" / "notes.txt").read_text() == "my own notes\n"


def test_score_refuses_an_output_holding_its_input(ws):
    battery = Battery(ws, "score")
    battery.ok(score(), outputs=["scored"], case="first score")
    battery.error(score(preds="scored/predictions.jsonl", out="scored"), "input", case="input inside --out")


def test_score_unwritable_out(ws):
    target = unwritable(ws)
    Battery(ws, "score").error(score(out=str(target)), None, case="out not writable")


@pytest.mark.parametrize("writes", [0, 2])
def test_score_disk_full_keeps_the_previous_output(ws, monkeypatch, writes):
    battery = Battery(ws, "score")
    battery.ok(score(), outputs=["scored"], case="score before the disk fills")
    before = {p.name: p.read_bytes() for p in (ws / "scored").iterdir()}
    disk_full_after(monkeypatch, writes)
    battery.error(score("--name", "other"), "No space left", case=f"disk full after {writes} writes")
    assert {p.name: p.read_bytes() for p in (ws / "scored").iterdir()} == before


def test_score_disk_full_into_a_new_folder_leaves_nothing(ws, monkeypatch):
    disk_full_after(monkeypatch, 1)
    Battery(ws, "score").error(score(out="fresh"), "No space left", case="disk full, new folder")
    assert not (ws / "fresh").exists()


@GENERATED
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_score_generated_bytes(tmp_path_factory, raw, suffix):
    """Arbitrary bytes as the predictions file: a clean error or a correct record, nothing else touched."""
    from battery import OUTCOMES

    ws = tmp_path_factory.mktemp("gen")
    write_csv(ws / "refs.csv", REPORTS)
    (ws / f"p{suffix}").write_bytes(raw)
    battery = Battery(ws, "score")
    try:
        battery.run(score(preds=f"p{suffix}"), "error", outputs=["scored"], case=f"generated {suffix} {raw[:20]!r}")
    except AssertionError:
        if OUTCOMES[-1].kind != "silent_accept":
            raise
        OUTCOMES.pop()  # the bytes happened to be a valid file: then it must be a correct success
        battery.ok(score("--allow-partial", preds=f"p{suffix}", out="scored2"), outputs=["scored2"],
                   check=has_record("scored2"), case=f"generated valid {suffix}")


# -------------------------------------------------------------------------------------------------- label
def label(*extra: str, source: str = "refs.csv", out: str = "labels.csv") -> list[str]:
    return ["label", source, "--out", out, *extra]


LABEL_ERRORS = {
    "out is the input": (label(out="refs.csv"), "input"),
    "out is the input by another path": (label(out="./mine/../refs.csv"), "input"),
    "out is a folder": (label(out="mine"), "folder"),
    "out is a foreign file": (label(out="preds.csv"), "--force"),
    "out below a file": (label(out="afile.txt/labels.csv"), "afile.txt"),
    "non-utf8 input": (label(source="latin1.csv"), "UTF-8"),
    "non-utf8 jsonl input": (label(source="latin1.jsonl"), "UTF-8"),
    "csv field over 128 KB": (label(source="huge.csv"), "field"),
    "unknown labeler": (label("--labeler", "negbio"), "labeler"),
    "unknown labeler option": (label("--set", "threshold=1"), "threshold"),
    "set without equals": (label("--set", "checkpoint"), "key=value"),
    "chexbert without weights": (label("--labeler", "chexbert"), "chexbert"),
    "missing input": (label(source="nope.jsonl"), "nope.jsonl"),
    "input is a folder": (label(source="mine"), "mine"),
    "unknown column": (label("--column", "text"), "text"),
}


@pytest.mark.parametrize("case", list(LABEL_ERRORS))
def test_label_bad_input(ws, case):
    argv, message = LABEL_ERRORS[case]
    Battery(ws, "label").error(argv, message, case=case)


def test_label_duplicated_ids(ws):
    (ws / "dup.csv").write_text("id,report\na,x\na,y\n")
    Battery(ws, "label").error(label(source="dup.csv"), "duplicated", case="duplicated ids")


def labels_of(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["id"] for row in csv.DictReader(handle)]


def test_label_succeeds_and_overwrites_its_own_output(ws):
    battery = Battery(ws, "label")
    battery.ok(label(), outputs=["labels.csv"], case="label a CSV")
    assert labels_of(ws / "labels.csv") == list(REPORTS)
    battery.ok(label(source="refs.jsonl"), outputs=["labels.csv"], case="relabel into its own output")
    battery.ok(label("--force", out="preds.csv"), outputs=["preds.csv"], case="foreign file with --force")


def test_label_unwritable(ws):
    Battery(ws, "label").error(label(out=str(unwritable(ws) / "l.csv")), None, case="out not writable")


def test_label_disk_full_keeps_the_previous_labels(ws, monkeypatch):
    battery = Battery(ws, "label")
    battery.ok(label(), outputs=["labels.csv"], case="label before the disk fills")
    before = (ws / "labels.csv").read_bytes()
    disk_full_after(monkeypatch, 0)
    battery.error(label(source="refs.jsonl"), "No space left", case="disk full")
    assert (ws / "labels.csv").read_bytes() == before


@GENERATED
@given(texts=st.lists(st.text(max_size=80), min_size=1, max_size=5))
def test_label_generated_reports(tmp_path_factory, texts):
    """Any unicode reports (valid UTF-8 JSONL) are labelled, one row per id, in order."""
    ws = tmp_path_factory.mktemp("gen")
    rows = {f"id{i}": text for i, text in enumerate(texts)}
    write_jsonl(ws / "in.jsonl", rows)
    Battery(ws, "label").ok(label(source="in.jsonl", out="out.csv"), outputs=["out.csv"],
                            check=lambda r: None if labels_of(ws / "out.csv") == list(rows) else "ids differ",
                            case=f"generated reports {texts[:1]!r}")


# -------------------------------------------------------------------------------------------------- compare
@pytest.fixture
def pair(ws) -> Path:
    """Two score outputs, A and B, over the same studies."""
    battery = Battery(ws, "score")
    battery.ok(score(out="A"), outputs=["A"], case="score A")
    write_csv(ws / "other.csv", {k: "no acute findings ." for k in REPORTS})
    battery.ok(score(preds="other.csv", out="B"), outputs=["B"], case="score B")
    return ws


def compare(*extra: str, a: str = "A", b: str = "B") -> list[str]:
    return ["compare", a, b, *FAST, *extra]


COMPARE_ERRORS = {
    "run A missing": (compare(a="nowhere"), "nowhere"),
    "run A without predictions": (compare(a="mine"), "predictions.jsonl"),
    "out is a folder": (compare("--out", "mine"), "folder"),
    "out is a run's record": (compare("--out", "A/results.json"), "input"),
    "out is a foreign file": (compare("--out", "preds.csv"), "--force"),
    "out is run A's predictions": (compare("--out", "A/predictions.jsonl"), "input"),
    "out below a file": (compare("--out", "afile.txt/c.json"), "afile.txt"),
    "unknown metric": (compare("--metrics", "bleu_9"), "bleu_9"),
    "resamples 0": (compare("--resamples", "0"), "resamples"),
    "negative seed": (compare("--seed", "-3"), "seed"),
    "unknown skip key": (compare("--skip", "blue_4"), "blue_4"),
    "bad test": (compare("--test", "t-test"), "test"),
    "seeds without records": (compare("--seeds", a="mine"), "results.json"),
    "A and B in one folder": (compare(a="."), "runs"),
}


@pytest.mark.parametrize("case", list(COMPARE_ERRORS))
def test_compare_bad_input(pair, case):
    argv, message = COMPARE_ERRORS[case]
    Battery(pair, "compare").error(argv, message, case=case)


@pytest.mark.parametrize("content, message", [
    ('{"id": "s1", "prediction": "a"', "B/predictions.jsonl"),
    ('{"id": "s1"}\n', "expected id, prediction and reference"),
    ("[]\n", "expected id, prediction and reference"),
    (b"\xff\xfe\x00garbage\n", "B/predictions.jsonl"),
    ('{"id": "zz", "prediction": "a", "reference": "b"}\n', "different studies"),
])
def test_compare_damaged_run(pair, content, message):
    path = pair / "B" / "predictions.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    Battery(pair, "compare").error(compare(), message, case=f"B predictions {content[:25]!r}")


def test_compare_damaged_record_with_seeds(pair):
    (pair / "B" / "results.json").write_text('{"schema_version": 2, "kind": "ext')
    Battery(pair, "compare").error(compare("--seeds"), "results.json", case="truncated results.json, --seeds")


def test_compare_succeeds_and_overwrites_its_own_output(pair):
    battery = Battery(pair, "compare")
    battery.ok(compare("--out", "cmp.json"), outputs=["cmp.json"], case="compare A B")
    assert json.loads((pair / "cmp.json").read_text())["rows"]
    battery.ok(compare("--out", "cmp.json", "--test", "randomization"), outputs=["cmp.json"],
               case="compare again into its own output")
    battery.ok(compare("--seeds", "--out", "seeds.json"), outputs=["seeds.json"], case="compare --seeds")
    battery.ok(compare("--out", "preds.csv", "--force"), outputs=["preds.csv"], case="foreign file with --force")


@GENERATED
@given(raw=st.binary(max_size=200))
def test_compare_generated_damage(tmp_path_factory, raw):
    """Arbitrary bytes as run B's predictions: a clean error (they never match A's studies)."""
    ws = tmp_path_factory.mktemp("gen")
    write_csv(ws / "preds.csv", REPORTS)
    write_csv(ws / "refs.csv", REPORTS)
    battery = Battery(ws, "compare")
    battery.ok(score(out="A"), outputs=["A"], case="score A")
    (ws / "B").mkdir()
    (ws / "B" / "predictions.jsonl").write_bytes(raw)
    battery.error(compare(), None, case=f"generated B predictions {raw[:20]!r}")
