"""Scoring throughput on 4,000 reports: NLG metrics, CE labelling and metrics, bootstrap CIs.

References are real IU X-Ray reports (R2Gen's ``annotation.json`` in ``../shared/data/real``, read in
place, never copied into the repository), cleaned with R2Gen's IU cleaning and repeated to
``N_REPORTS``; each prediction is its reference perturbed deterministically (a sentence dropped,
one borrowed from another report, the order shuffled), so scores sit in a realistic middle range.
Skipped when the shared data is absent.
"""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
from benchutil import REAL_DATA

N_REPORTS = 4000
ANNOTATION = REAL_DATA / "iu_xray_r2gen" / "annotation.json"


def perturb(report: str, other: str, rng: random.Random) -> str:
    sentences = [s for s in report.split(" . ") if s.strip(" .")]
    borrowed = [s for s in other.split(" . ") if s.strip(" .")]
    if len(sentences) > 1 and rng.random() < 0.5:
        sentences.pop(rng.randrange(len(sentences)))
    if borrowed and rng.random() < 0.5:
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(borrowed))
    if rng.random() < 0.3:
        rng.shuffle(sentences)
    return " . ".join(s.strip(" .") for s in sentences) + " ."


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    if not ANNOTATION.is_file():
        pytest.skip(f"real IU X-Ray reports not found at {ANNOTATION}")
    from rrgbench.data.cleaning import clean_report

    data = json.loads(ANNOTATION.read_text(encoding="utf-8"))
    reports = [clean_report(s["report"], "iu-xray") for split in data.values() for s in split]
    reports = [r for r in reports if r.strip()]
    references = [reports[i % len(reports)] for i in range(N_REPORTS)]
    rng = random.Random(0)
    predictions = [perturb(ref, references[(i * 7919) % N_REPORTS], rng) for i, ref in enumerate(references)]
    return predictions, references


def _info(benchmark, metric: str, n: int) -> None:
    benchmark.extra_info.update({"metric": metric, "reports": n})


@pytest.mark.parametrize("metrics", [("bleu_1", "bleu_2", "bleu_3", "bleu_4"), ("rouge_l",), ("cider",)],
                         ids=["bleu", "rouge_l", "cider"])
def test_nlg_throughput(benchmark, corpus, metrics):
    from rrgbench.metrics.nlg import score_nlg

    predictions, references = corpus
    results = benchmark.pedantic(score_nlg, args=(predictions, references), kwargs={"metrics": metrics}, rounds=3,
                                 warmup_rounds=1)
    assert all(0.0 < results[m].value < 1.0 or m == "cider" for m in metrics)
    _info(benchmark, "+".join(metrics), len(predictions))


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_throughput(benchmark, corpus):
    from rrgbench.metrics.nlg import MeteorScorer

    predictions, references = corpus
    with MeteorScorer() as scorer:
        result = benchmark.pedantic(scorer.score, args=(predictions, references), rounds=2, warmup_rounds=1)
    assert result.value is not None, result.unavailable
    _info(benchmark, "meteor (running JVM)", len(predictions))


def test_ce_labelling_throughput(benchmark, corpus):
    from rrgbench.metrics.labelers.registry import build_labeler

    predictions, references = corpus
    labeler = build_labeler(None, "chexpert-rules")
    labels = benchmark.pedantic(labeler.label, args=(predictions + references,), rounds=2, warmup_rounds=1)
    assert len(labels) == 2 * len(predictions)
    _info(benchmark, f"label ({labeler.name}), both sides", 2 * len(predictions))


def test_ce_metrics_throughput(benchmark, corpus):
    from rrgbench.metrics.clinical import ce_metrics
    from rrgbench.metrics.labelers.registry import build_labeler

    predictions, references = corpus
    labeler = build_labeler(None, "chexpert-rules")
    pred_labels, ref_labels = labeler.label(predictions), labeler.label(references)
    results = benchmark.pedantic(ce_metrics, args=(pred_labels, ref_labels), rounds=5, warmup_rounds=1)
    assert results["ce_f1_micro"].value is not None
    _info(benchmark, "CE precision/recall/F1 from labels", len(predictions))


@pytest.mark.parametrize("metric", ["bleu_4", "cider", "rouge_l"])
def test_bootstrap_ci_throughput(benchmark, corpus, metric):
    from rrgbench.metrics.nlg import score_nlg
    from rrgbench.metrics.statistics import bootstrap_ci

    predictions, references = corpus
    result = score_nlg(predictions, references, metrics=(metric,))[metric]
    low, high = benchmark.pedantic(bootstrap_ci, args=(result,), kwargs={"n_resamples": 1000}, rounds=2,
                                   warmup_rounds=0)
    assert low <= result.value <= high
    _info(benchmark, f"{metric} 95% CI, 1000 resamples", len(predictions))


def test_perturbed_corpus_is_realistic(corpus):
    predictions, references = corpus
    assert len(predictions) == N_REPORTS and len(set(references)) > 1000
    changed = np.mean([p != r for p, r in zip(predictions, references, strict=True)])
    assert 0.3 < changed < 1.0
