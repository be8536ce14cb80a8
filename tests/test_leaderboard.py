"""Leaderboards from run records only: rows, sections, significance, flags, curves, writers, safety, rebuilds."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from record_factory import make_record, metric, save

from rrgbench.cli import main
from rrgbench.errors import DataError
from rrgbench.record import (
    Efficiency,
    Inference,
    Parameters,
    PredictionStats,
    Retrieval,
    StudyResult,
    Timing,
    TrainCost,
    Validation,
    ValidationPoint,
)
from rrgbench.report.board import DEGENERATE_SHARE, build_board
from rrgbench.report.check import check_complete, parse_tables, sections
from rrgbench.report.csvfiles import csv_text
from rrgbench.report.html import page
from rrgbench.report.markdown import markdown
from rrgbench.report.plots import label_groups, pareto_front, plots
from rrgbench.report.significance import holm
from rrgbench.report.tables import document
from rrgbench.report.writing import REPORT_FILES, build_leaderboards, build_reports

V1 = Path(__file__).parent / "fixtures" / "records_v1"
METRICS = ("bleu_4", "meteor", "ce_f1_micro")
FINDINGS = ("there is a large right pleural effusion .", "the heart is enlarged . cardiomegaly is present .",
            "there is pulmonary edema .", "there is a left lower lobe consolidation .",
            "no acute cardiopulmonary abnormality . the lungs are clear .")
REFERENCES = [FINDINGS[i % len(FINDINGS)] for i in range(30)]


def efficiency(latency=0.2, share=0.1, size=256, overhead=0.3, memory=True):
    if memory:
        retrieval = Retrieval(memory="clinical-memory", memory_size=size, share_of_forward=share,
                              share_of_generate=share * 2,
                              vs_no_memory={"method": "identity", "decode_overhead": overhead})
    else:
        retrieval = Retrieval(memory="none", unavailable="the model has no memory component",
                              vs_no_memory={"method": None, "unavailable": "the model has no memory component"})
    return Efficiency(parameters=Parameters(total=12_000_000, trainable=12_000_000),
                      train=TrainCost(steps_timed=10, warmup_steps_excluded=1,
                                      step_seconds=Timing(0.2, 0.3, 0.2, 10), samples_per_second=40.0),
                      inference=Inference(latency_batch1={"seconds": {"median": latency}},
                                          throughput={"studies_per_second": 30.0}),
                      peak_memory={"run": {"peak_rss_bytes": 2**30}}, retrieval=retrieval,
                      device={"torch_threads": 2})


def studies(predictions):
    return [StudyResult(f"s{i:02d}", p, r) for i, (p, r) in enumerate(zip(predictions, REFERENCES, strict=True))]


def stats(predictions):
    counts = Counter(predictions)
    text, top = counts.most_common(1)[0]
    n = len(predictions)
    return PredictionStats(n, len(counts), len(counts) / n, top / n, text)


def record(model, seed=0, ce=0.3, bleu=0.1, *, overrides=None, created="2026-01-01T00:00:00", eff=None, meteor=None,
           predictions=None, history=None, per_observation=None, ablation_of=None):
    metrics = {"bleu_4": metric(bleu, (bleu - 0.02, bleu + 0.02), group="nlg"),
               "meteor": metric(meteor, group="nlg") if meteor is not None else
               metric(None, unavailable="skipped on request (--skip meteor)", group="nlg"),
               "ce_f1_micro": metric(ce, (ce - 0.05, ce + 0.05), group="clinical")}
    overrides = dict(overrides or {})
    fields = {}
    if predictions is not None:
        fields.update(studies=studies(predictions), predictions=stats(predictions))
    if history is not None:
        fields["validation"] = Validation("ce_f1_micro", len(history), history[-1][2], [
            ValidationPoint(epoch=i + 1, step=step, seconds=seconds, value=value,
                            values={"ce_f1_micro": value, "bleu_4": value / 2})
            for i, (step, seconds, value) in enumerate(history)])
    if per_observation is not None:
        fields["tables"] = {"ce_per_observation": [{"observation": name, "support": 6, "predicted": 6,
                                                    "precision": f1, "recall": f1, "f1": f1}
                                                   for name, f1 in per_observation.items()]}
    rec = make_record(model, "synthetic", seed=seed, metrics=metrics, created=created,
                      run_id=f"{model}-s{seed}-{created[:10]}", profile="small",
                      config={"model": model, "sections": {"memory": overrides}, "overrides": {"flag": overrides}},
                      efficiency=eff if eff is not None else efficiency(memory=model.startswith("mcsam")),
                      ablation_of=ablation_of if ablation_of is not None else
                      ("mcsam" if model.startswith("mcsam-") else None), **fields)
    rec.environment.device_name = "x86_64"
    rec.environment.git = {"commit": "abc1234def", "dirty": False}
    return rec


def write_records(root, records):
    for i, rec in enumerate(records):
        save(root / rec.dataset / rec.model / f"run{i}", rec)


@pytest.fixture
def records():
    return [
        record("transformer", 0, 0.30, 0.10), record("transformer", 1, 0.30, 0.14),
        record("mcsam", 0, 0.40, 0.20, eff=efficiency(latency=0.3)),
        record("mcsam", 1, 0.42, 0.22, eff=efficiency(latency=0.3)),
        record("mcsam", 0, 0.30, 0.30, overrides={"memory.size": "1024"}, eff=efficiency(size=1024, share=0.3)),
        record("mcsam-no-memory", 0, 0.35, 0.15, eff=efficiency(memory=False)),
        record("nearest-neighbor", 0, 0.20, 0.05, eff=Efficiency(parameters=Parameters(total=1, trainable=0))),
    ]


def table_of(text, title):
    """Header -> cells of every row of the table in section ``title``, by row label."""
    header, rows = parse_tables(sections(text)[title])[0]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


def test_rows_aggregate_seeds_split_configurations_and_sort_by_the_headline(records):
    board = build_board("synthetic", records, significance=False)
    assert board.sort.key == "ce_f1_micro"  # the synthetic dataset selects on CE micro-F1
    # ties on CE micro-F1 (transformer and the N_m 1024 row) are broken by BLEU-4
    assert board.rows == ["mcsam", "mcsam-no-memory", "mcsam (memory.size=1024)", "transformer", "nearest-neighbor"]
    cell = board.cells[("transformer", "bleu_4")]
    assert cell.mean == pytest.approx(0.12) and cell.sd == pytest.approx(0.02828, abs=1e-4) and cell.n == 2
    assert cell.ci_half == pytest.approx(0.02)  # one run's CI, a column of its own
    single = board.cells[("mcsam (memory.size=1024)", "bleu_4")]
    assert single.sd is None and single.ci_half == pytest.approx(0.02)
    assert (single.low, single.high) == pytest.approx((0.28, 0.32))
    assert board.families == {"mcsam": ["mcsam-no-memory"]}
    assert build_board("synthetic", records, sort="bleu_4", significance=False).rows[0] == "mcsam (memory.size=1024)"
    with pytest.raises(Exception, match="did you mean 'bleu_4'"):
        build_board("synthetic", records, sort="bleu4", significance=False)


def test_sections_one_meaning_per_column_and_collapsed_na(records):
    text = markdown(document(build_board("synthetic", records), {}))
    ranking = table_of(text, "Ranking")
    assert list(ranking) == ["mcsam", "mcsam-no-memory", "mcsam (memory.size=1024)", "transformer",
                             "nearest-neighbor"]
    top = ranking["mcsam"]
    assert top["ce_f1_micro ↑"] == "**0.4100**" and top["sd (ce_f1_micro)"] == "0.0141"
    assert top["±95% CI of one run (ce_f1_micro)"] == "0.0500" and top["±95% CI of one run (bleu_4)"] == "0.0200"
    assert top["#"] == "1" and top["vs #1 (ce_f1_micro)"] == "reference"
    assert ranking["transformer"]["vs #1 (bleu_4)"].startswith("n/a[^test")  # no studies in these records: no test
    assert "no paired test: a record has no scored studies" in text
    language = table_of(text, "Language")
    assert language["transformer"]["bleu_4 ↑"] == "0.1200 ± 0.0283"
    assert language["mcsam (memory.size=1024)"]["bleu_4 ↑"] == "**0.3000**"  # one run: no ±
    assert "meteor ↑" not in language["transformer"]  # n/a for every model: one line instead of a column
    assert "Not shown (n/a for every model): `meteor`: skipped on request (--skip meteor)" in text
    assert "not comparable with CE figures computed with CheXbert" in sections(text)["Clinical"]
    cost = table_of(text, "Cost")
    assert cost["transformer"]["latency b1 (ms) ↓"].startswith("**200.0")  # lower is better
    assert cost["nearest-neighbor"]["train samples/s ↑"] == "n/a[^train_samples_per_s]"
    assert "[^train_samples_per_s]: not measured in this record" in text


def test_holm_bonferroni():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.3, 0.2]) == pytest.approx([0.4, 0.4])  # monotone step-down
    assert holm([]) == []


def significance_records():
    good = list(REFERENCES)
    lazy = ["no acute cardiopulmonary abnormality . the lungs are clear ."] * len(REFERENCES)
    return [*(record("mcsam", s, 0.9, 0.5, predictions=good) for s in (0, 1)),
            *(record("twin", s, 0.8, 0.5, predictions=good) for s in (0, 1)),
            *(record("mcsam-no-memory", s, 0.1, 0.1, predictions=lazy) for s in (0, 1)),
            record("old", 0, 0.2, 0.1)]


def test_significance_from_the_records_studies():
    board = build_board("synthetic", significance_records())
    tests = board.tests
    assert board.rows[0] == "mcsam" and tests.best == "mcsam"
    lazy = tests.vs_best[("mcsam-no-memory", "ce_f1_micro")]
    assert lazy.units == 60 and lazy.paired_on == "seeds 0,1" and lazy.delta < 0
    assert lazy.p_holm >= lazy.p and lazy.significant
    twin = tests.vs_best[("twin", "ce_f1_micro")]
    assert twin.delta == 0 and not twin.significant  # the same reports: no difference
    assert tests.vs_best[("old", "bleu_4")].note.startswith("no paired test: a record has no scored studies")
    ablation = tests.ablations[("mcsam", "mcsam-no-memory", "ce_f1_micro")]
    assert ablation.significant and ablation.ci95[1] < 0
    text = markdown(document(board, {}))
    ranking = table_of(text, "Ranking")
    assert ranking["mcsam-no-memory"]["vs #1 (ce_f1_micro)"].startswith("▼ p")
    assert ranking["twin"]["vs #1 (ce_f1_micro)"] == "≈ p=1.000"
    assert ranking["mcsam-no-memory"]["reports"] == "degenerate" and ranking["mcsam"]["reports"] == "varied"
    assert "Holm-Bonferroni" in sections(text)["Significance"] and "α = 0.05" in text
    assert table_of(text, "Ablations")["mcsam-no-memory"]["vs base"].startswith("▼ p")


def test_rows_without_a_common_seed_are_paired_only_one_run_each():
    good = list(REFERENCES)
    records = [record("a", 0, 0.9, predictions=good), record("b", 1, 0.5, predictions=good),
               record("c", 1, 0.4, predictions=good), record("c", 2, 0.4, predictions=good)]
    tests = build_board("synthetic", records).tests
    assert tests.vs_best[("b", "ce_f1_micro")].paired_on == "one run each (seed 1 against seed 0)"
    assert tests.vs_best[("c", "ce_f1_micro")].note == "no paired test: the rows have no seed in common"


def test_degenerate_flag_per_observation_and_curves():
    same = ["no acute cardiopulmonary abnormality ."] * 30
    varied = list(REFERENCES)
    records = [record("lazy", 0, predictions=same, per_observation={"Edema": 0.0, "Cardiomegaly": 0.5}),
               record("good", 0, predictions=varied, history=[(10, 1.0, 0.2), (20, 2.0, 0.4)],
                      per_observation={"Edema": 0.6, "Cardiomegaly": 0.8}),
               record("good", 1, predictions=varied, history=[(10, 3.0, 0.4), (20, 4.0, 0.6)],
                      per_observation={"Edema": 0.8, "Cardiomegaly": 0.8})]
    board = build_board("synthetic", records, significance=False)
    assert board.diversity["lazy"].degenerate and board.diversity["lazy"].most_frequent_share == 1.0 >= DEGENERATE_SHARE
    assert not board.diversity["good"].degenerate
    curve = board.curves["good"]["ce_f1_micro"]
    assert curve.steps == [10, 20] and curve.seconds == [2.0, 3.0] and curve.mean == pytest.approx([0.3, 0.5])
    assert "lazy" not in board.curves
    assert board.per_observation["good"]["Edema"][0] == pytest.approx(0.7)
    text = markdown(document(board, {}))
    observations = table_of(text, "Clinical F1 per observation")
    assert observations["good"]["Edema"] == "**0.700 ± 0.141**" and observations["lazy"]["Cardiomegaly"] == "0.500"
    assert table_of(text, "Report diversity")["lazy"]["flag"] == "degenerate"
    assert "No validation history in the records of: lazy." in text


def test_every_cell_is_escaped_in_html_and_csv_cells_cannot_be_formulas(records):
    evil = "<script>alert(9)</script>"
    records.append(record("mcsam", 0, 0.1, overrides={"memory.size": evil}, predictions=[f"<img src=x onerror=a()> {i}"
                                                                                        for i in range(30)]))
    records[0].metrics["meteor"] = metric(None, unavailable="=HYPERLINK(\"http://x\")", group="nlg")
    board = build_board("synthetic", records, significance=False)
    text = page(document(board, {}), {})
    assert "<script" not in text and "<img src=x" not in text
    assert html.escape(f"mcsam (memory.size={evil})") in text
    md = markdown(document(board, {}))
    assert "|" not in table_of(md, "Language")[f"mcsam (memory.size={evil})"]["model"].replace(evil, "")
    rows = list(csv.reader(io.StringIO(csv_text(["a", "b", "c", "d"], [["=1+1", "+2", "-x", "@SUM(A1)"]]))))
    assert rows[1] == ["'=1+1", "'+2", "'-x", "'@SUM(A1)"]
    assert csv_text(["n"], [[-1.5]]) == "n\n-1.5\n"  # numbers stay numbers
    from rrgbench.report.csvfiles import summary_csv

    summary = {row["model"]: row for row in csv.DictReader(io.StringIO(summary_csv(board)))}
    assert summary["transformer"]["meteor_note"].startswith("'=HYPERLINK")


def test_plots_take_any_label_and_spread_coinciding_points(records):
    records.append(record("mcsam", 0, 0.3, overrides={"memory.size": "$\\alpha$"}))
    board = build_board("synthetic", records, significance=False)
    images = plots(board)
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for data in images.values())
    groups = label_groups([(100.0, 0.21), (101.0, 0.21), (200.0, 0.21), (100.0, 0.5)], log_x=False)
    assert groups == [[0, 1], [2], [3]]  # coinciding points share one label


def test_pareto_front():
    points = [(1.0, 0.1), (2.0, 0.3), (3.0, 0.2), (4.0, 0.5), (0.5, 0.05)]
    assert pareto_front(points) == [4, 0, 1, 3]


def test_reports_are_complete_and_self_contained(tmp_path, records):
    write_records(tmp_path / "runs", records)
    reports = build_reports(tmp_path / "runs", tmp_path / "out")
    folder = tmp_path / "out" / "synthetic"
    assert sorted(p.name for p in reports["synthetic"]) == sorted(REPORT_FILES)
    for name in REPORT_FILES:
        if name.endswith(".png"):
            assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (folder / "leaderboard.html").read_text()  # plots without data (curves, per observation) not shown
    assert text.count("data:image/png;base64,") == 4 and "<style>" in text and "http" not in text.split("<body>")[1]
    summary = list(csv.DictReader(io.StringIO((folder / "leaderboard.csv").read_text())))
    assert summary[0]["model"] == "mcsam"
    assert {"bleu_4", "bleu_4_sd", "bleu_4_ci95_half", "latency_ms"} <= set(summary[0])
    assert len((folder / "runs.csv").read_text().splitlines()) == len(records) + 1
    expected = {"synthetic": ["transformer", "mcsam", "mcsam-no-memory", "nearest-neighbor"]}
    assert check_complete(tmp_path / "out", expected, METRICS) == []
    assert build_leaderboards(tmp_path / "runs", tmp_path / "again", with_plots=False) == [
        tmp_path / "again" / "synthetic" / "leaderboard.md"]


def test_check_complete_names_what_is_missing(tmp_path, records):
    write_records(tmp_path / "runs", records)
    build_reports(tmp_path / "runs", tmp_path / "out", with_plots=False)
    folder = tmp_path / "out" / "synthetic"
    problems = check_complete(tmp_path / "out", {"synthetic": ["r2gen", "mcsam"]}, [*METRICS, "cider"])
    assert any("metrics.png is missing" in p for p in problems)
    assert any("ranking table has no row for model 'r2gen'" in p for p in problems)
    assert any("no column for metric 'cider'" in p for p in problems)
    assert not any("'meteor'" in p for p in problems)  # named in the n/a-for-every-model line
    text = (folder / "leaderboard.md").read_text()
    text = text.replace("[^train_samples_per_s]: not", "[^other]: not").replace("| 0.1200 ± 0.0283 |", "|  |", 1)
    (folder / "leaderboard.md").write_text(text)
    problems = check_complete(tmp_path / "out", {"synthetic": ["mcsam"]}, METRICS)
    assert any("footnote [^train_samples_per_s] undefined" in p for p in problems)
    assert any("is neither a value nor n/a" in p for p in problems)


def test_leaderboard_cli_builds_checks_and_sorts(tmp_path, records, capsys):
    write_records(tmp_path / "runs", records)
    out = tmp_path / "out"
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(out), "--no-plots",
                 "--sort", "latency_ms"]) == 0
    ranking = table_of((out / "synthetic" / "leaderboard.md").read_text(), "Ranking")
    # lowest latency first; ties by the headline metrics; no latency measured last
    assert list(ranking) == ["mcsam-no-memory", "mcsam (memory.size=1024)", "transformer", "mcsam",
                             "nearest-neighbor"]
    assert main(["leaderboard", "--check", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 1  # no PNGs
    assert "metrics.png is missing" in capsys.readouterr().err


@pytest.mark.parametrize("records_folder", ["hand-made", "v1"])
def test_the_report_rebuilds_byte_for_byte_from_its_own_records(tmp_path, records, records_folder):
    if records_folder == "v1":
        runs = V1
        count = len(list(V1.rglob("results.json")))
    else:
        runs = tmp_path / "runs"
        write_records(runs, [*records, *significance_records()])
        count = len(records) + len(significance_records())
    build_reports(runs, tmp_path / "out")
    kept = tmp_path / "out" / "synthetic" / "records"
    assert len(list(kept.rglob("results.json"))) == count
    build_reports(kept, tmp_path / "again")
    build_reports(kept, tmp_path / "out")  # rebuilding in place from the folder being replaced
    for name in REPORT_FILES:
        first = (tmp_path / "out" / "synthetic" / name).read_bytes()
        assert first == (tmp_path / "again" / "synthetic" / name).read_bytes(), name
    assert len(list(kept.rglob("results.json"))) == count
    assert not [p for p in kept.parent.iterdir() if p.name.startswith(".records")]


@pytest.mark.parametrize("dataset", ["../victim", "/tmp/abs-victim", "a/b"])
def test_a_record_cannot_make_the_board_write_outside_out(tmp_path, dataset):
    victim = tmp_path / "victim"
    (victim / "records").mkdir(parents=True)
    (victim / "records" / "keep.txt").write_text("mine")
    bad = record("sys", 0)
    bad.dataset = dataset
    write_records(tmp_path / "runs", [record("transformer", 0)])
    save(tmp_path / "runs" / "x" / "bad", bad)
    with pytest.raises(DataError, match=r"results.json: dataset .* cannot name a folder.*was not written"):
        build_reports(tmp_path / "runs", tmp_path / "out")
    assert (victim / "records" / "keep.txt").read_text() == "mine" and not (tmp_path / "out").exists()
    assert not Path("/tmp/abs-victim").exists()


def test_a_model_name_that_is_no_folder_name_is_refused_in_one_line(tmp_path, capsys):
    bad = record("sys-v|<script>alert(9)</script>", 0)
    save(tmp_path / "runs" / "bad", bad)
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model 'sys-v|<script>" in err and not (tmp_path / "out").exists()


def test_an_unreadable_record_stops_the_board_and_deletes_nothing(tmp_path, records, capsys):
    write_records(tmp_path / "runs", records)
    build_reports(tmp_path / "runs", tmp_path / "out", with_plots=False)
    kept = tmp_path / "out" / "synthetic" / "records"
    victim = sorted(kept.rglob("results.json"))[0]
    victim.write_text(victim.read_text()[:200])  # truncated
    before = sorted(p.relative_to(kept) for p in kept.rglob("*"))
    md = (tmp_path / "out" / "synthetic" / "leaderboard.md").read_bytes()
    assert main(["leaderboard", "--runs", str(kept), "--out", str(tmp_path / "out")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed JSON" in err and str(victim) in err
    assert sorted(p.relative_to(kept) for p in kept.rglob("*")) == before
    assert (tmp_path / "out" / "synthetic" / "leaderboard.md").read_bytes() == md


def test_no_records_is_a_one_line_error(tmp_path, capsys):
    assert main(["leaderboard", "--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) != 0
    assert main(["leaderboard", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "no such folder" in err[0] and "no run records" in err[1]


def test_published_reports_and_records_name_no_home_folder(tmp_path, records, monkeypatch):
    home = tmp_path / "home" / "alice"
    monkeypatch.setenv("HOME", str(home))
    records[0].metrics["meteor"].unavailable = f"jar not found at {home}/.cache/meteor.jar"
    records[0].protocol.dataset["synthetic"] = {"folder": f"{home}/.cache/rrgbench/synthetic/abc", "other": f"{home}x"}
    write_records(tmp_path / "runs", records)
    build_reports(tmp_path / "runs", tmp_path / "out")
    folder = tmp_path / "out" / "synthetic"
    for path in [*(folder / name for name in REPORT_FILES), *(folder / "records").rglob("results.json")]:
        assert str(home) + "/" not in path.read_bytes().decode("utf-8", "replace"), path.name
    assert "jar not found at ~/.cache/meteor.jar" in (folder / "leaderboard.md").read_text()
    [kept] = [json.loads(p.read_text()) for p in (folder / "records").rglob("results.json")
              if "synthetic" in json.loads(p.read_text())["protocol"]["dataset"]]
    assert kept["protocol"]["dataset"]["synthetic"] == {"folder": "~/.cache/rrgbench/synthetic/abc",
                                                        "other": f"{home}x"}


# -- a real browser ------------------------------------------------------------------------------------------
BROWSER = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
               None)
PROBE = """<script>(function(){
const out = {width: window.innerWidth, page: document.documentElement.scrollWidth, tables: []};
for (const div of document.querySelectorAll('.scroll')) {
  const box = div.getBoundingClientRect(), first = div.querySelector('tbody tr td:first-child');
  const overflow = div.scrollWidth > div.clientWidth;
  div.scrollLeft = div.scrollWidth;
  const cell = first.getBoundingClientRect();
  out.tables.push({section: div.dataset.section, left: box.left, right: box.right, overflow: overflow,
                   scrolled: div.scrollLeft, first_left: cell.left, first_right: cell.right});
}
const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);})();</script>"""


def layout(page_file: Path, width: int) -> dict:
    """The page's layout in headless Chromium at ``width`` px, every table scrolled fully to the right."""
    probe = page_file.with_name("probe.html")
    probe.write_text(page_file.read_text().replace("</body>", PROBE + "</body>"))
    result = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run",
                             f"--window-size={width},900", "--dump-dom", probe.as_uri()],
                            capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">([^<]*)</pre>', result.stdout)
    assert found, result.stderr[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (apt-get install chromium)")
def test_the_page_fits_the_window_with_the_model_column_pinned(tmp_path):
    long_rows = [record(f"model-with-a-long-name-{i}", s, 0.1 * i, 0.05 * i,
                        overrides={"memory.size": str(64 * i)} if i % 2 else None) for i in range(6) for s in (0, 1)]
    write_records(tmp_path / "runs", long_rows)
    build_reports(tmp_path / "runs", tmp_path / "out", with_plots=False)
    page_file = tmp_path / "out" / "synthetic" / "leaderboard.html"
    wide = layout(page_file, 1280)
    assert wide["page"] <= wide["width"]  # no sideways scrolling of the page itself
    by_section = {t["section"]: t for t in wide["tables"]}
    for name in ("Ranking", "Language", "Clinical", "Cost"):
        assert by_section[name]["right"] <= wide["width"] and not by_section[name]["overflow"], name
    narrow = layout(page_file, 640)
    assert narrow["page"] <= narrow["width"]
    scrolled = [t for t in narrow["tables"] if t["overflow"]]
    assert scrolled, "at 640 px some table must scroll"
    for table in scrolled:
        assert table["scrolled"] > 0 and table["right"] <= narrow["width"]
        assert abs(table["first_left"] - table["left"]) <= 2, table  # the model column stays in view
