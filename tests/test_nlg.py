"""Tests for rrgbench.metrics.nlg: COCO demo scores, pycocoevalcap parity (any whitespace), resampling, METEOR."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge, my_lcs

from rrgbench.data.cleaning import fold_whitespace
from rrgbench.errors import DataError, UnknownNameError
from rrgbench.metrics import nlg
from rrgbench.metrics.base import MetricResult
from rrgbench.metrics.nlg import JAVA_MISSING, NLG_METRICS, MeteorScorer, corpus_bleu, score_nlg
from rrgbench.metrics.statistics import AdditiveResampler, bootstrap_indices

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
COCO = REAL / "metric_refs" / "coco_caption_demo"
HAS_JAVA = shutil.which("java") is not None
COCO_NAMES = {
    "Bleu_1": "bleu_1",
    "Bleu_2": "bleu_2",
    "Bleu_3": "bleu_3",
    "Bleu_4": "bleu_4",
    "METEOR": "meteor",
    "ROUGE_L": "rouge_l",
    "CIDEr": "cider",
}
HANDMADE: list[tuple[str, str | list[str]]] = [
    ("the heart is normal in size", "the heart is normal in size"),
    ("", "no pleural effusion or pneumothorax"),
    ("the lungs are clear bilaterally", ["small left pleural effusion", "the lungs are clear bilaterally"]),
    ("no pneumothorax\nor\tfocal  consolidation\r\n", "no focal consolidation\n\nor pneumothorax"),
    ("no pneumothorax or focal consolidation", "no focal consolidation or pneumothorax"),
    ("cardiomégalie – stable ×2", "cardiomégalie stable"),
    ("effusion ||| resolved", ["effusion ||| resolved", "   "]),
]

WHITESPACE_CASES: list[tuple[str, list[str]]] = [
    ("the heart  is normal ", ["the heart is\tnormal", " the  heart is normal  ."]),
    ("no\npleural effusion", ["no pleural\r\neffusion", "no pleural effusion\n"]),
    ("\tlungs ||| clear\r", ["lungs ||| clear", "\n\nlungs are\u00a0clear"]),
    ("   ", ["heart normal"]),
]

WORDS = "the heart is normal no pleural effusion left right lung clear size a of".split()


class PopenSpy:
    """Wraps subprocess.Popen to record every child process and how it was started."""

    def __init__(self) -> None:
        self.real = subprocess.Popen
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], subprocess.Popen]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> subprocess.Popen:
        process = self.real(*args, **kwargs)
        self.calls.append((args, kwargs, process))
        return process


def coco_inputs() -> tuple[list[str], list[list[str]], list[str]]:
    gts = json.loads((COCO / "gts_tokenized.json").read_text(encoding="utf-8"))
    res = json.loads((COCO / "res_tokenized.json").read_text(encoding="utf-8"))
    keys = list(gts)
    return [res[key][0] for key in keys], [gts[key] for key in keys], keys


def random_text(rng: random.Random, low: int = 0, high: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def random_corpus(rng: random.Random, n: int) -> tuple[list[str], list[list[str]]]:
    hyps = [random_text(rng) for _ in range(n)]
    refs = [[random_text(rng, low=1) for _ in range(rng.randint(1, 4))] for _ in range(n)]
    return hyps, refs


def as_coco(hyps: list[str], refs: list[list[str]]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    return dict(enumerate(refs)), {i: [hyp] for i, hyp in enumerate(hyps)}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((COCO / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def scored() -> Iterator[dict[str, Any]]:
    """The COCO demo and the hand-made cases, scored with one shared METEOR JVM (its start takes seconds)."""
    spy = PopenSpy()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nlg.subprocess, "Popen", spy)
        with MeteorScorer() as meteor:
            hyps, refs, _ = coco_inputs()
            coco = score_nlg(hyps, refs, meteor=meteor)
            handmade = score_nlg([hyp for hyp, _ in HANDMADE], [ref for _, ref in HANDMADE], meteor=meteor)
            hyps, refs = [hyp for hyp, _ in WHITESPACE_CASES], [ref for _, ref in WHITESPACE_CASES]
            spaced = meteor.score(hyps, refs)
            folded = meteor.score([fold_whitespace(hyp.replace("|||", "")) for hyp in hyps],
                                  [[fold_whitespace(ref.replace("|||", " ")) for ref in study] for study in refs])
    yield {"coco": coco, "handmade": handmade, "spy": spy, "meteor_spaced": spaced, "meteor_folded": folded}


@pytest.fixture(scope="module")
def coco(scored: dict[str, Any]) -> dict[str, MetricResult]:
    return scored["coco"]


@pytest.fixture(scope="module")
def handmade(scored: dict[str, Any]) -> dict[str, MetricResult]:
    return scored["handmade"]


# ---------------------------------------------------------------------------------- COCO caption demo


@pytest.mark.parametrize("name", ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr", "METEOR"])
def test_coco_demo_matches_published_scores(
    coco: dict[str, MetricResult], expected: dict[str, Any], name: str
) -> None:
    if name == "METEOR" and not HAS_JAVA:
        pytest.skip("METEOR needs java")
    value = coco[COCO_NAMES[name]].value
    assert value is not None
    official = expected["official_coco_caption_demo_3dp"][name]
    assert abs(value - official) <= 0.0005, f"{name}: {value} vs published {official} (3 dp)"
    full = expected["full_precision_from_captionmetrics_screenshot"][name]
    assert value == pytest.approx(full, abs=1e-12)


def test_coco_demo_matches_pycocoevalcap_reproduction(
    coco: dict[str, MetricResult], expected: dict[str, Any]
) -> None:
    reproduced = expected["reproduced_here_with_pypi_pycocoevalcap_1.2"]
    for order in range(1, 5):
        assert coco[f"bleu_{order}"].value == pytest.approx(reproduced["Bleu"][order - 1], abs=1e-15)
    assert coco["rouge_l"].value == pytest.approx(reproduced["ROUGE_L"], abs=1e-15)
    assert coco["cider"].value == pytest.approx(reproduced["CIDEr"], abs=1e-14)
    if HAS_JAVA:
        assert coco["meteor"].value == pytest.approx(reproduced["METEOR"], abs=1e-15)


def test_coco_demo_bleu_counts(coco: dict[str, MetricResult], expected: dict[str, Any]) -> None:
    published = expected["official_coco_caption_demo_3dp"]["bleu_counts"]
    assert coco["bleu_4"].details["counts"] == published


def test_coco_demo_meteor_details(coco: dict[str, MetricResult]) -> None:
    if not HAS_JAVA:
        pytest.skip("METEOR needs java")
    meteor = coco["meteor"]
    assert len(meteor.per_sample or []) == 1000
    assert meteor.details["segment_mean"] == pytest.approx(np.mean(meteor.per_sample))
    everything = np.arange(1000)[None, :]
    assert meteor.resampled(everything)[0] == pytest.approx(meteor.value)  # the interval surrounds the value
    halves = np.stack([np.arange(500), np.arange(500, 1000)])
    shifted = np.asarray(meteor.per_sample)[halves].mean(axis=1) + meteor.value - meteor.details["segment_mean"]
    assert meteor.resampled(halves) == pytest.approx(shifted)


def test_coco_per_sample_scores_are_pycocoevalcaps(coco: dict[str, MetricResult]) -> None:
    hyps, refs, _ = coco_inputs()
    gts, res = as_coco(hyps, refs)
    bleu, bleu_images = Bleu(4).compute_score(gts, res, verbose=0)
    for order in range(1, 5):
        assert coco[f"bleu_{order}"].value == bleu[order - 1]
        assert coco[f"bleu_{order}"].per_sample == pytest.approx(bleu_images[order - 1], abs=1e-15)
    _, rouge_images = Rouge().compute_score(gts, res)
    assert coco["rouge_l"].per_sample == pytest.approx(list(rouge_images), abs=1e-15)
    _, cider_images = Cider().compute_score(gts, res)
    assert coco["cider"].per_sample == pytest.approx(list(cider_images), abs=1e-12)


# ---------------------------------------------------------------------------------- BLEU resampling


def test_bleu_identity_resample_equals_pycocoevalcap(coco: dict[str, MetricResult]) -> None:
    identity = np.arange(1000)[None, :]
    for order in range(1, 5):
        result = coco[f"bleu_{order}"]
        assert isinstance(result.resample, AdditiveResampler)
        assert abs(result.resampled(identity)[0] - result.value) < 1e-9


def test_bleu_random_resample_equals_pycocoevalcap_on_duplicated_studies() -> None:
    rng = random.Random(7)
    hyps, refs = random_corpus(rng, 25)
    results = score_nlg(hyps, refs, ("bleu_1", "bleu_2", "bleu_3", "bleu_4"))
    indices = bootstrap_indices(25, n_resamples=4, seed=3)
    for row in indices:
        gts = {slot: refs[i] for slot, i in enumerate(row)}
        res = {slot: [hyps[i]] for slot, i in enumerate(row)}
        reference, _ = Bleu(4).compute_score(gts, res, verbose=0)
        for order in range(1, 5):
            recomputed = results[f"bleu_{order}"].resampled(row[None, :])[0]
            assert abs(recomputed - reference[order - 1]) < 1e-9
    assert len(set(map(tuple, indices))) == 4 and any(len(set(row)) < 25 for row in indices)


def test_corpus_bleu_applies_brevity_penalty_and_smoothing() -> None:
    # testlen 3 < reflen 6, no 4-gram match: pycocoevalcap's tiny/small constants keep it finite
    totals = np.array([[3, 6, 3, 2, 1, 0, 3, 2, 1, 0]], dtype=float)
    penalty = np.exp(1 - (6 + 1e-9) / (3 + 1e-15))
    precisions = [(c + 1e-15) / (g + 1e-9) for c, g in zip([3, 2, 1, 0], [3, 2, 1, 0], strict=True)]
    for order in range(1, 5):
        expected = np.prod(precisions[:order]) ** (1 / order) * penalty
        assert corpus_bleu(totals, order)[0] == pytest.approx(expected, rel=1e-12)
    assert corpus_bleu(totals, 4)[0] == pytest.approx((1e-15 / 1e-9) ** 0.25 * penalty, rel=1e-6)


def test_bleu_bootstrap_of_4000_studies_is_fast() -> None:
    rng = np.random.default_rng(0)
    guess = rng.integers(20, 60, size=(4000, 1)) - np.arange(4)
    stats = np.hstack([guess[:, :1], guess[:, :1] + rng.integers(-5, 5, (4000, 1)), guess, guess // 3])
    resampler = AdditiveResampler(stats.astype(float), lambda t: corpus_bleu(t, 4), kind="bleu_4")
    start = time.perf_counter()
    values = resampler(bootstrap_indices(4000, 1000, seed=0))
    elapsed = time.perf_counter() - start
    assert values.shape == (1000,)
    assert elapsed < 3.0, f"1,000 resamples of 4,000 studies took {elapsed:.2f} s"


# ---------------------------------------------------------------------------------- pycocoevalcap parity


@pytest.mark.parametrize("seed", range(6))
def test_rouge_and_cider_match_pycocoevalcap_on_random_corpora(seed: int) -> None:
    rng = random.Random(seed)
    hyps, refs = random_corpus(rng, rng.randint(1, 40))
    gts, res = as_coco(hyps, refs)
    results = score_nlg(hyps, refs, ("rouge_l", "cider"))
    rouge, rouge_images = Rouge().compute_score(gts, res)
    cider, cider_images = Cider().compute_score(gts, res)
    assert results["rouge_l"].per_sample == list(rouge_images)
    assert results["rouge_l"].value == pytest.approx(rouge, abs=1e-15)
    assert results["cider"].per_sample == pytest.approx(list(cider_images), abs=1e-12)
    assert results["cider"].value == pytest.approx(cider, abs=1e-12)


SEPARATORS = st.sampled_from([" ", "  ", "   ", "\t", "\n", "\r\n", " \n ", "\t ", "\u00a0"])
EDGES = st.sampled_from(["", "", " ", "  ", "\t", "\n"])
TOKENS = st.sampled_from(["the", "heart", "is", "normal", "no", "effusion", ".", ",", "é", "|||"])


@st.composite
def spaced_text(draw: st.DrawFn, min_tokens: int = 0) -> str:
    """Tokens joined by random runs of whitespace (spaces, tabs, newlines), with random ends."""
    tokens = draw(st.lists(TOKENS, min_size=min_tokens, max_size=12))
    text = draw(EDGES)
    for position, token in enumerate(tokens):
        text += (draw(SEPARATORS) if position else "") + token
    return text + draw(EDGES)


SPACED_CORPUS = st.lists(
    st.tuples(spaced_text(), st.lists(spaced_text(min_tokens=1), min_size=1, max_size=3)), min_size=1, max_size=8
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPACED_CORPUS)
def test_scores_equal_pycocoevalcap_whatever_the_whitespace(corpus: list[tuple[str, list[str]]]) -> None:
    hyps, refs = [hyp for hyp, _ in corpus], [ref for _, ref in corpus]
    gts, res = as_coco(hyps, refs)
    results = score_nlg(hyps, refs, ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"))
    rouge, rouge_images = Rouge().compute_score(gts, res)
    assert results["rouge_l"].per_sample == list(rouge_images)
    assert abs(results["rouge_l"].value - rouge) <= 1e-9
    cider, cider_images = Cider().compute_score(gts, res)
    assert np.abs(np.asarray(results["cider"].per_sample) - cider_images).max() <= 1e-9
    assert abs(results["cider"].value - cider) <= 1e-9
    bleu, bleu_images = Bleu(4).compute_score(gts, res, verbose=0)
    for order in range(1, 5):
        assert results[f"bleu_{order}"].value == bleu[order - 1]
        assert results[f"bleu_{order}"].per_sample == bleu_images[order - 1]


def test_rouge_counts_empty_tokens_as_pycocoevalcap_does() -> None:
    single = score_nlg(["the heart is normal"], ["the heart is normal"], ("rouge_l",))["rouge_l"].value
    double = score_nlg(["the heart is normal"], ["the heart  is normal"], ("rouge_l",))["rouge_l"].value
    assert single == pytest.approx(1.0) and double < single
    assert double == Rouge().compute_score({0: ["the heart  is normal"]}, {0: ["the heart is normal"]})[0]
    folded = score_nlg(["the heart is normal"], [fold_whitespace("the heart  is normal")], ("rouge_l",))
    assert folded["rouge_l"].value == pytest.approx(1.0)  # folding is the caller's choice


def test_lcs_length_matches_pycocoevalcap() -> None:
    rng = random.Random(11)
    for _ in range(300):
        first = [rng.choice("abcde") for _ in range(rng.randint(0, 30))]
        second = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert nlg.lcs_length(first, second) == my_lcs(first, second)


def test_identical_reports_score_perfectly() -> None:
    reports = ["the heart is normal", "no pleural effusion seen", "lungs are clear bilaterally"]
    results = score_nlg(reports, reports, ("bleu_1", "bleu_4", "rouge_l", "cider"))
    for name in ("bleu_1", "bleu_4", "rouge_l"):
        assert results[name].value == pytest.approx(1.0, abs=1e-8)
        assert results[name].per_sample == pytest.approx([1.0] * 3, abs=1e-8)
    assert results["cider"].per_sample == pytest.approx([10.0] * 3)  # disjoint vocabularies: full IDF weight


# ---------------------------------------------------------------------------------- hand-made cases, METEOR


def test_handmade_results_cover_every_metric(handmade: dict[str, MetricResult]) -> None:
    results = handmade
    assert tuple(results) == NLG_METRICS
    for name, result in results.items():
        if name == "meteor" and not HAS_JAVA:
            assert result.unavailable == JAVA_MISSING
            continue
        assert result.value is not None and len(result.per_sample or []) == len(HANDMADE), name


def test_empty_prediction_scores_zero(handmade: dict[str, MetricResult]) -> None:
    results = handmade
    for name, result in results.items():
        if result.per_sample is not None:
            assert result.per_sample[1] == pytest.approx(0.0, abs=1e-12), name


def test_multi_reference_uses_best_reference(handmade: dict[str, MetricResult]) -> None:
    results = handmade
    for name in ("bleu_1", "bleu_4", "rouge_l"):
        assert results[name].per_sample[0] == pytest.approx(1.0, abs=1e-8)
        assert results[name].per_sample[2] == pytest.approx(1.0, abs=1e-8), name  # closest ref length wins
    if HAS_JAVA:
        assert results["meteor"].per_sample[0] > 0.9
        assert results["meteor"].per_sample[2] > 0.9


def test_whitespace_is_tokenized_as_pycocoevalcap_does(handmade: dict[str, MetricResult]) -> None:
    # case 3 is case 4 with tabs, newlines and a double space: only ROUGE-L (split on " ") sees them
    results = handmade
    for name, result in results.items():
        if result.per_sample is not None and name != "rouge_l":
            assert result.per_sample[3] == pytest.approx(result.per_sample[4], abs=1e-12), name
    (hyp, ref), _ = HANDMADE[3], HANDMADE[4]
    expected = Rouge().calc_score([hyp], [ref])
    assert results["rouge_l"].per_sample[3] == expected and 0 < expected < results["rouge_l"].per_sample[4]


def test_meteor_is_whitespace_invariant_and_keeps_its_protocol(scored: dict[str, Any]) -> None:
    """Line breaks would desynchronise the jar's stdin protocol; as spaces, every segment scores as folded."""
    if not HAS_JAVA:
        pytest.skip("METEOR needs java")
    spaced, folded = scored["meteor_spaced"], scored["meteor_folded"]
    assert len(spaced.per_sample or []) == len(WHITESPACE_CASES)
    assert spaced.per_sample == folded.per_sample and spaced.value == folded.value
    assert spaced.per_sample[0] > 0.9 and spaced.per_sample[3] == 0.0


def test_meteor_runs_in_utf8_english_locale_and_is_closed(scored: dict[str, Any]) -> None:
    if not HAS_JAVA:
        pytest.skip("METEOR needs java")
    spy = scored["spy"]
    assert len(spy.calls) == 1, "one JVM serves both score_nlg calls"
    args, kwargs, process = spy.calls[0]
    assert kwargs["env"]["LC_ALL"] == "C.UTF-8" and kwargs["env"]["LANG"] == "C.UTF-8"
    assert "-Dfile.encoding=UTF-8" in args[0] and args[0][-5:] == ["-", "-stdio", "-l", "en", "-norm"]
    assert process.returncode is not None, "the METEOR JVM was left running"
    assert process.stdin.closed and process.stdout.closed


def test_java_missing_makes_only_meteor_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = PopenSpy()
    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)
    monkeypatch.setattr(nlg.subprocess, "Popen", spy)
    results = score_nlg(["the heart is normal"], ["the heart is normal"])
    assert results["meteor"].value is None
    assert results["meteor"].unavailable == JAVA_MISSING
    assert all(results[name].value is not None for name in NLG_METRICS if name != "meteor")
    assert spy.calls == []


def _fake_java(monkeypatch: pytest.MonkeyPatch, command: list[str]) -> PopenSpy:
    spy = PopenSpy()
    monkeypatch.setattr(nlg.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(nlg, "meteor_command", lambda java: command)
    monkeypatch.setattr(nlg.subprocess, "Popen", spy)
    return spy


def test_failing_jar_reports_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _fake_java(
        monkeypatch, ["sh", "-c", "echo 'Error: Unable to access jarfile meteor.jar' >&2; exit 1"]
    )
    results = score_nlg(
        ["no effusion", "heart normal"], ["no effusion", "heart normal"], ("meteor", "bleu_1")
    )
    assert results["meteor"].unavailable == "METEOR failed: Error: Unable to access jarfile meteor.jar"
    assert results["bleu_1"].value == pytest.approx(1.0, abs=1e-8)
    assert all(process.returncode is not None for _, _, process in spy.calls)


def test_meteor_scorer_keeps_its_failure_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _fake_java(monkeypatch, ["sh", "-c", "echo 'Exception in thread main: boom' >&2; exit 3"])
    with MeteorScorer() as meteor:
        first = meteor.score(["no effusion"], ["no effusion"])
        second = score_nlg(["no effusion"], ["no effusion"], ("meteor",), meteor=meteor)["meteor"]
    assert first.unavailable == second.unavailable == "METEOR failed: Exception in thread main: boom"
    assert len(spy.calls) == 1 and spy.calls[0][2].returncode == 3
    monkeypatch.setattr(nlg.shutil, "which", lambda name: None)
    assert MeteorScorer().score(["a"], ["a"]).unavailable == JAVA_MISSING


def test_hanging_jar_is_killed_by_the_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _fake_java(monkeypatch, ["sleep", "60"])
    monkeypatch.setattr(nlg, "_meteor_timeout", lambda n_studies: 0.5)
    start = time.perf_counter()
    results = score_nlg(["no effusion"], ["no effusion"], ("meteor",))
    assert time.perf_counter() - start < 15
    assert (results["meteor"].unavailable or "").startswith("METEOR timed out")
    assert all(process.returncode is not None for _, _, process in spy.calls)


@pytest.mark.skipif(not HAS_JAVA, reason="needs java")
def test_real_java_with_missing_jar(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jar")
    spy = PopenSpy()
    monkeypatch.setattr(nlg, "meteor_command", lambda java: [java, "-jar", missing])
    monkeypatch.setattr(nlg.subprocess, "Popen", spy)
    results = score_nlg(["no effusion"], ["no effusion"], ("meteor",))
    reason = results["meteor"].unavailable or ""
    assert reason.startswith("METEOR failed:") and "jarfile" in reason
    assert all(process.returncode is not None for _, _, process in spy.calls)


# ---------------------------------------------------------------------------------- inputs and details


def test_metric_subset_does_not_start_java(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = PopenSpy()
    monkeypatch.setattr(nlg.subprocess, "Popen", spy)
    results = score_nlg(["a b c"], [["a b c", "a b"]], ("cider", "bleu_2"))
    assert list(results) == ["cider", "bleu_2"] and spy.calls == []


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'bleu_4'"):
        score_nlg(["a"], ["a"], ("bleu4",))
    with pytest.raises(DataError, match="2 predictions but 1 references"):
        score_nlg(["a", "b"], ["a"])
    with pytest.raises(DataError, match="no non-blank reference"):
        score_nlg(["a"], [[" ", ""]], ("bleu_1",))
    with pytest.raises(DataError, match="not a string"):
        score_nlg([None], ["a"], ("bleu_1",))  # type: ignore[list-item]
    with pytest.raises(DataError, match="no studies"):
        score_nlg([], [], ("bleu_1",))


def test_details_document_protocol_and_resampling(coco: dict[str, MetricResult]) -> None:
    assert "no PTB" in coco["bleu_1"].details["tokenization"]
    assert "fixed to the full test set" in coco["cider"].details["resampling"]
    assert coco["rouge_l"].resample is None and coco["cider"].resample is None
    assert coco["cider"].details["n_studies"] == 1000
