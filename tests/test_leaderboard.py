"""Leaderboards from run records only: aggregation, Markdown, CSV, HTML, plots and the completeness check."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from record_factory import make_record, metric, save

from rrgbench.cli import main
from rrgbench.record import Efficiency, Inference, Parameters, Retrieval, Timing, TrainCost
from rrgbench.report.leaderboard import (
    EFFICIENCY_KEYS,
    REPORT_FILES,
    ablation_families,
    build_board,
    build_leaderboards,
    build_reports,
    check_complete,
    markdown,
    pareto_front,
    parse_tables,
)

METRICS = ("bleu_4", "meteor", "ce_f1_micro")


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


def record(model, seed=0, bleu=0.1, overrides=None, created="2026-01-01T00:00:00", eff=None, meteor=None):
    metrics = {"bleu_4": metric(bleu, (bleu - 0.02, bleu + 0.02), group="nlg"),
               "meteor": metric(meteor, group="nlg") if meteor is not None else
               metric(None, unavailable="skipped on request (--skip meteor)", group="nlg"),
               "ce_f1_micro": metric(0.3 + bleu, (0.2, 0.5), group="clinical")}
    overrides = dict(overrides or {})
    rec = make_record(model, "synthetic", seed=seed, metrics=metrics, created=created,
                      run_id=f"{model}-{seed}-{created}", profile="small",
                      config={"model": model, "sections": {"memory": overrides}, "overrides": {"flag": overrides}},
                      efficiency=eff if eff is not None else efficiency(memory=model.startswith("mcsam")),
                      ablation_of="mcsam" if model.startswith("mcsam-") else None)
    rec.environment.device_name = "x86_64"
    rec.environment.git = {"commit": "abc1234def", "dirty": False}
    return rec


def write_records(root, records):
    for i, rec in enumerate(records):
        save(root / rec.dataset / rec.model / f"run{i}", rec)


@pytest.fixture
def records():
    return [
        record("transformer", 0, 0.10), record("transformer", 1, 0.14),
        record("mcsam", 0, 0.20, eff=efficiency(latency=0.3)), record("mcsam", 1, 0.22, eff=efficiency(latency=0.3)),
        record("mcsam", 0, 0.30, overrides={"memory.size": "1024"}, eff=efficiency(size=1024, share=0.3)),
        record("mcsam-no-memory", 0, 0.15, eff=efficiency(memory=False)),
        record("nearest-neighbor", 0, 0.05, eff=Efficiency(parameters=Parameters(total=1, trainable=0))),
    ]


def cells(table_text, row_label):
    tables = [t for t in parse_tables(table_text) if t[0][0] == "model"]
    header, rows = tables[0]
    row = next(r for r in rows if r[0] == row_label)
    return dict(zip(header, row, strict=True))


def test_rows_aggregate_seeds_and_split_configurations(records):
    board = build_board("synthetic", records)
    assert board.rows == ["mcsam", "mcsam (memory.size=1024)", "mcsam-no-memory", "nearest-neighbor", "transformer"]
    mean = board.cells[("transformer", "bleu_4")]
    assert mean.mean == pytest.approx(0.12) and mean.kind == "std" and mean.n == 2
    single = board.cells[("mcsam (memory.size=1024)", "bleu_4")]
    assert single.kind == "ci95" and single.err == pytest.approx(0.02)
    assert ablation_families(board) == {"mcsam": ["mcsam-no-memory"]}


def test_markdown_marks_best_direction_and_unavailable(records):
    text = markdown("synthetic", records)
    row = cells(text, "mcsam (memory.size=1024)")
    assert row["bleu_4 ↑"] == "**0.3000** ± 0.0200" and row["CE labeler"] == "chexpert-rules"
    assert row["meteor ↑"] == "n/a[^meteor]" and "[^meteor]: skipped on request (--skip meteor)" in text
    assert cells(text, "transformer")["runs"] == "2" and cells(text, "transformer")["seeds"] == "0,1"
    eff_header, eff_rows = [t for t in parse_tables(text) if t[0][0] == "model"][1]
    eff = {r[0]: dict(zip(eff_header, r, strict=True)) for r in eff_rows}
    assert eff["transformer"]["latency b1 (ms) ↓"].startswith("**200.0**")  # lower is better
    assert eff["nearest-neighbor"]["train samples/s ↑"] == "n/a[^train_samples_per_s]"
    assert "[^train_samples_per_s]: not measured in this record" in text
    assert eff["transformer"]["memory share of forward (%) ↓"].startswith("n/a[^memory_share_pct")
    assert "## Ablations" in text and "Base: **mcsam**" in text


def test_a_rerun_of_a_seed_replaces_the_older_record():
    old, new = record("transformer", 0, 0.1, created="2026-01-01"), record("transformer", 0, 0.3, created="2026-02-01")
    board = build_board("synthetic", [new, old])
    assert board.cells[("transformer", "bleu_4")].mean == pytest.approx(0.3) and len(board.runs["transformer"]) == 1


def test_pareto_front():
    points = [(1.0, 0.1), (2.0, 0.3), (3.0, 0.2), (4.0, 0.5), (0.5, 0.05)]
    assert pareto_front(points) == [4, 0, 1, 3]


def test_reports_are_complete_and_self_contained(tmp_path, records):
    write_records(tmp_path / "runs", records)
    reports = build_reports(tmp_path / "runs", tmp_path / "out")
    folder = tmp_path / "out" / "synthetic"
    assert sorted(p.name for p in reports["synthetic"]) == sorted(REPORT_FILES)
    for name in ("metrics.png", "quality_vs_latency.png", "retrieval_overhead.png", "ablations.png"):
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "leaderboard.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "<style>" in page and "http" not in page.split("<body>")[1]
    summary = pd.read_csv(folder / "leaderboard.csv")
    assert summary["model"].iloc[0] == "mcsam" and {"bleu_4", "bleu_4_err", *EFFICIENCY_KEYS} <= set(summary)
    assert len(pd.read_csv(folder / "runs.csv")) == len(records)
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
    assert any("no row for model 'r2gen'" in p for p in problems)
    assert any("no column for metric 'cider'" in p for p in problems)
    text = (folder / "leaderboard.md").read_text().replace("[^meteor]: skipped", "[^other]: skipped")
    (folder / "leaderboard.md").write_text(text.replace("| **0.3000** ± 0.0200 |", "|  |", 1))
    problems = check_complete(tmp_path / "out", {"synthetic": ["mcsam"]}, METRICS)
    assert any("footnote [^meteor] undefined" in p for p in problems)
    assert any("is neither a value nor n/a" in p for p in problems)


def test_leaderboard_cli_builds_and_checks(tmp_path, records, capsys):
    write_records(tmp_path / "runs", records)
    out = tmp_path / "out"
    assert main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(out), "--no-plots"]) == 0
    assert (out / "synthetic" / "leaderboard.html").is_file()
    assert main(["leaderboard", "--check", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 1  # no PNGs
    assert "metrics.png is missing" in capsys.readouterr().err


def test_the_report_rebuilds_byte_for_byte_from_its_own_records(tmp_path, records):
    write_records(tmp_path / "runs", records)
    build_reports(tmp_path / "runs", tmp_path / "out")
    kept = tmp_path / "out" / "synthetic" / "records"
    assert len(list(kept.rglob("results.json"))) == len(records)
    build_reports(kept, tmp_path / "again")
    build_reports(kept, tmp_path / "out")  # rebuilding in place from the folder being replaced
    for name in REPORT_FILES:
        first = (tmp_path / "out" / "synthetic" / name).read_bytes()
        assert first == (tmp_path / "again" / "synthetic" / name).read_bytes(), name
    assert len(list(kept.rglob("results.json"))) == len(records)


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
