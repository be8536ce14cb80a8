"""NLG metrics of generated reports: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, as pycocoevalcap computes them.

Owns ``score_nlg`` and the bootstrap behaviour of each of these metrics.

Protocol (R2Gen's): texts are scored as given and split on whitespace - no PTB tokenizer, no lowercasing, and
references are never truncated. Runs of whitespace (newlines, tabs) are folded to one space first: BLEU and CIDEr
see the same tokens, ROUGE-L's ``split(" ")`` sees no empty tokens, and METEOR's one-segment-per-line stdin
protocol stays intact. Blank references are dropped; every study needs at least one non-blank reference. An empty
prediction scores 0 on every metric.

- BLEU-n: pycocoevalcap's ``BleuScorer`` with the 'closest' reference length; the corpus value and the per-study
  scores are pycocoevalcap's own. ``resample`` recomputes the *corpus* BLEU exactly as pycocoevalcap would on the
  resampled multiset of studies, from per-study sufficient statistics (clipped n-gram matches and guesses per
  order, hypothesis length, the closest reference length) and pycocoevalcap's tiny/small constants
  (``statistics.AdditiveResampler``; vectorised).
- METEOR: pycocoevalcap's ``Meteor`` (meteor-1.5 jar), spawned with an English UTF-8 locale and always shut down
  afterwards. ``value`` is the jar's corpus aggregate; ``per_sample`` are its segment scores. The jar's aggregate
  differs slightly from the mean of the segment scores, and the bootstrap CI is on the segment mean. Without Java,
  or if the jar fails, METEOR is unavailable (with the reason) and the other metrics still run.
- ROUGE-L and CIDEr-D are re-implemented here with the arithmetic of pycocoevalcap's ``Rouge`` (beta 1.2, max
  precision and recall over references) and ``Cider`` (CIDEr-D: n<=4, sigma 6, clipped tf-idf, x10, the length
  penalty counting bigrams as pycocoevalcap does); tests check them against pycocoevalcap. pycocoevalcap's
  pure-Python versions take about 9 s for 4,000 reports of 50 words; these take well under 2 s (ROUGE-L uses a
  bit-parallel LCS). Both are means of per-study scores, and their bootstrap is the mean of resampled per-study
  scores.
- CIDEr-D resampling choice: the document frequencies (IDF) stay fixed to the full test set's references. An
  exact recompute would rebuild them from each resampled multiset of references; that cannot be vectorised
  cheaply. With fixed IDF the CI covers the variation of per-study scores but not the IDF's own variation
  (a second-order effect on test sets of hundreds of studies or more). ``details['resampling']`` says so.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any

import numpy as np
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.meteor import meteor as _meteor_module
from pycocoevalcap.meteor.meteor import Meteor

from rrgbench.errors import DataError, UnknownNameError, did_you_mean
from rrgbench.metrics.base import MetricResult
from rrgbench.metrics.statistics import AdditiveResampler

NLG_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")

BLEU_ORDER = 4
BLEU_TINY = 1e-15  # pycocoevalcap's BleuScorer constants ("tiny" numerator, "small" denominator smoothing)
BLEU_SMALL = 1e-9
ROUGE_BETA = 1.2
CIDER_ORDER = 4
CIDER_SIGMA = 6.0

JAVA_MISSING = (
    "METEOR needs Java >= 8 on PATH (java not found); install a JRE, e.g. apt-get install default-jre-headless"
)
METEOR_LOCALE = "C.UTF-8"
METEOR_SHUTDOWN_S = 10.0

_TOKENIZATION = "whitespace split of the text as given (no PTB tokenizer; R2Gen protocol)"
_METEOR_DIR = os.path.dirname(os.path.abspath(_meteor_module.__file__))


# ---------------------------------------------------------------------------------------------- inputs


def fold_whitespace(text: str) -> str:
    """Fold every run of whitespace (spaces, newlines, tabs) to one space and strip the ends."""
    return " ".join(text.split())


def _reference_list(item: str | Sequence[str], position: int) -> list[str]:
    texts = [item] if isinstance(item, str) else list(item)
    if not all(isinstance(text, str) for text in texts):
        raise DataError(f"references of study {position} must be strings")
    folded = [fold_whitespace(text) for text in texts]
    kept = [text for text in folded if text]
    if not kept:
        raise DataError(f"study {position} has no non-blank reference report")
    return kept


def _prepare(
    predictions: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Validate and normalise inputs: folded predictions and non-blank folded reference lists."""
    if len(predictions) != len(references):
        raise DataError(f"{len(predictions)} predictions but {len(references)} references; they must be aligned")
    if not predictions:
        raise DataError("no studies to score")
    for position, text in enumerate(predictions):
        if not isinstance(text, str):
            raise DataError(f"prediction of study {position} is {type(text).__name__}, not a string")
    hyps = [fold_whitespace(text) for text in predictions]
    refs = [_reference_list(item, position) for position, item in enumerate(references)]
    return hyps, refs


def _resolve_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(metrics))
    for name in wanted:
        if name not in NLG_METRICS:
            raise UnknownNameError(f"unknown NLG metric '{name}'{did_you_mean(name, NLG_METRICS)}")
    return wanted


# ---------------------------------------------------------------------------------------------- BLEU


def _closest_reference_length(reference_lengths: Sequence[int], test_length: int) -> int:
    """pycocoevalcap's 'closest' option: nearest reference length, the shorter one on ties."""
    return min((abs(length - test_length), length) for length in reference_lengths)[1]


def _bleu_statistics(cooked_tests: Sequence[dict[str, Any]]) -> np.ndarray:
    """Per-study sufficient statistics ``[N, 2 + 2n]``: testlen, closest reflen, guesses, clipped matches."""
    rows = [
        [comps["testlen"], _closest_reference_length(comps["reflen"], comps["testlen"])]
        + list(comps["guess"])
        + list(comps["correct"])
        for comps in cooked_tests
    ]
    return np.asarray(rows, dtype=np.float64)


def corpus_bleu(totals: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-``order`` from summed statistics ``[R, 2 + 2*BLEU_ORDER]``, with pycocoevalcap's arithmetic."""
    totals = np.atleast_2d(np.asarray(totals, dtype=np.float64))
    test_length, reference_length = totals[:, 0], totals[:, 1]
    guess, correct = totals[:, 2 : 2 + BLEU_ORDER], totals[:, 2 + BLEU_ORDER :]
    product = np.ones(totals.shape[0])
    for k in range(order):
        product = product * ((correct[:, k] + BLEU_TINY) / (guess[:, k] + BLEU_SMALL))
    score = product ** (1.0 / order)
    ratio = (test_length + BLEU_TINY) / (reference_length + BLEU_SMALL)
    brevity = np.exp(1.0 - 1.0 / ratio)
    return np.where(ratio < 1.0, score * brevity, score)


def _bleu_counts(stats: np.ndarray) -> dict[str, Any]:
    totals = stats.sum(axis=0)
    return {
        "testlen": int(totals[0]),
        "reflen": int(totals[1]),
        "guess": [int(x) for x in totals[2 : 2 + BLEU_ORDER]],
        "correct": [int(x) for x in totals[2 + BLEU_ORDER :]],
    }


def _score_bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]], wanted: Sequence[str]) -> dict[str, MetricResult]:
    scorer = BleuScorer(n=BLEU_ORDER)
    for hyp, ref in zip(hyps, refs):
        scorer += (hyp, list(ref))
    corpus, per_image = scorer.compute_score(option="closest", verbose=0)
    stats = _bleu_statistics(scorer.ctest)
    details = {
        "implementation": "pycocoevalcap BleuScorer, reference length 'closest'",
        "tokenization": _TOKENIZATION,
        "counts": _bleu_counts(stats),
        "resampling": "exact corpus BLEU recomputed from per-study sufficient statistics",
        "n_studies": len(hyps),
    }
    results = {}
    for order in range(1, BLEU_ORDER + 1):
        name = f"bleu_{order}"
        if name in wanted:
            results[name] = MetricResult(
                value=float(corpus[order - 1]),
                per_sample=[float(x) for x in per_image[order - 1]],
                resample=AdditiveResampler(stats, partial(corpus_bleu, order=order), kind=name),
                details=dict(details),
            )
    return results


# ---------------------------------------------------------------------------------------------- ROUGE-L


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, Hyyro 2004)."""
    if len(first) < len(second):
        first, second = second, first
    masks: dict[str, int] = {}
    for position, token in enumerate(second):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(second)) - 1
    row = full
    for token in first:
        mask = masks.get(token)
        if mask:
            matched = row & mask
            row = ((row + matched) | (row - matched)) & full
    return len(second) - bin(row).count("1")


def rouge_l(hyp: str, refs: Sequence[str], beta: float = ROUGE_BETA) -> float:
    """pycocoevalcap's ROUGE-L of one study: F-beta of the best LCS precision and recall over references."""
    candidate = hyp.split(" ")
    precisions, recalls = [], []
    for ref in refs:
        tokens = ref.split(" ")
        common = lcs_length(tokens, candidate)
        precisions.append(common / float(len(candidate)))
        recalls.append(common / float(len(tokens)))
    precision, recall = max(precisions), max(recalls)
    if precision == 0 or recall == 0:
        return 0.0
    return ((1 + beta**2) * precision * recall) / float(recall + beta**2 * precision)


def _score_rouge(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    scores = [rouge_l(hyp, ref) for hyp, ref in zip(hyps, refs)]
    return MetricResult(
        value=float(np.mean(np.array(scores))),
        per_sample=scores,
        details={
            "implementation": "pycocoevalcap Rouge arithmetic (beta 1.2), bit-parallel LCS",
            "tokenization": _TOKENIZATION,
            "resampling": "mean of per-study scores",
            "n_studies": len(hyps),
        },
    )


# ---------------------------------------------------------------------------------------------- CIDEr-D

NgramCounts = list[Counter]
"""Counts of the n-grams of one text, one Counter (keyed by word tuples) per order 1..CIDER_ORDER."""


def ngram_counts(text: str, order: int = CIDER_ORDER) -> NgramCounts:
    """Word n-gram counts of ``text`` for n = 1..order, in order of first occurrence."""
    words = text.split()
    return [Counter(zip(*(words[shift:] for shift in range(n)))) for n in range(1, order + 1)]


def _cider_weights(ref_counts: Sequence[Sequence[NgramCounts]]) -> tuple[dict[tuple[str, ...], float], float]:
    """IDF weights ``log(N) - log(df)`` from the studies' references; the default for unseen n-grams is ``log(N)``."""
    document_frequency: Counter = Counter()
    for study in ref_counts:
        seen: set[tuple[str, ...]] = set()
        for ref in study:
            for counts in ref:
                seen.update(counts)
        document_frequency.update(seen)
    log_n = math.log(float(len(ref_counts)))
    return {gram: log_n - math.log(df) for gram, df in document_frequency.items()}, log_n


def _tfidf(
    counts: NgramCounts, weights: dict[tuple[str, ...], float], default: float
) -> tuple[list[dict[tuple[str, ...], float]], list[float], int]:
    """tf-idf vector and its norm per order, and the length pycocoevalcap uses (its number of bigrams)."""
    vectors = [{gram: tf * weights.get(gram, default) for gram, tf in order.items()} for order in counts]
    norms = [math.sqrt(sum(value * value for value in vector.values())) for vector in vectors]
    return vectors, norms, sum(counts[1].values())


def _cider_similarity(
    hyp: tuple[list[dict], list[float], int], ref: tuple[list[dict], list[float], int], sigma: float
) -> list[float]:
    """Clipped cosine similarity per order times the Gaussian length penalty (CIDEr-D)."""
    hyp_vectors, hyp_norms, hyp_length = hyp
    ref_vectors, ref_norms, ref_length = ref
    delta = float(hyp_length - ref_length)
    penalty = math.e ** (-(delta**2) / (2 * sigma**2))
    values = []
    for hyp_vector, ref_vector, hyp_norm, ref_norm in zip(hyp_vectors, ref_vectors, hyp_norms, ref_norms):
        value = 0.0
        for gram, weight in hyp_vector.items():
            ref_weight = ref_vector.get(gram)
            if ref_weight is not None:
                value += min(weight, ref_weight) * ref_weight
        if hyp_norm != 0 and ref_norm != 0:
            value /= hyp_norm * ref_norm
        values.append(value * penalty)
    return values


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], sigma: float = CIDER_SIGMA) -> list[float]:
    """Per-study CIDEr-D as pycocoevalcap's Cider computes it, with IDF from all studies' references."""
    hyp_counts = [ngram_counts(hyp) for hyp in hyps]
    ref_counts = [[ngram_counts(ref) for ref in study] for study in refs]
    weights, default = _cider_weights(ref_counts)
    scores = []
    for hyp, study in zip(hyp_counts, ref_counts):
        hyp_vector = _tfidf(hyp, weights, default)
        totals = [0.0] * CIDER_ORDER
        for ref in study:
            similarity = _cider_similarity(hyp_vector, _tfidf(ref, weights, default), sigma)
            totals = [total + value for total, value in zip(totals, similarity)]
        score = sum(totals) / CIDER_ORDER
        score /= len(study)
        scores.append(score * 10.0)
    return scores


def _score_cider(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    scores = cider_d(hyps, refs)
    return MetricResult(
        value=float(np.mean(np.array(scores))),
        per_sample=scores,
        details={
            "implementation": "pycocoevalcap Cider arithmetic (CIDEr-D, n=4, sigma 6)",
            "tokenization": _TOKENIZATION,
            "resampling": "mean of per-study scores; document frequencies fixed to the full test set",
            "n_studies": len(hyps),
        },
    )


# ---------------------------------------------------------------------------------------------- METEOR


def meteor_command(java: str) -> list[str]:
    """The java command line of pycocoevalcap's Meteor, with an explicit UTF-8 encoding and English locale."""
    return [
        java, "-Xmx2G", "-Dfile.encoding=UTF-8", "-Duser.language=en", "-Duser.country=US",
        "-jar", _meteor_module.METEOR_JAR, "-", "-", "-stdio", "-l", "en", "-norm",
    ]  # fmt: skip


def meteor_environment() -> dict[str, str]:
    """The child environment: the parent's, with an English UTF-8 locale for the JVM."""
    env = dict(os.environ)
    env.update({"LC_ALL": METEOR_LOCALE, "LANG": METEOR_LOCALE})
    return env


def _meteor_text(text: str) -> str:
    """Keep METEOR's ``|||`` field separator out of a segment (pycocoevalcap does so for hypotheses only)."""
    return fold_whitespace(text.replace("|||", " "))


class _MeteorProcess(Meteor):
    """pycocoevalcap's Meteor with a controlled child environment, a stderr log, a watchdog and a real close."""

    def __init__(self, java: str) -> None:
        # Meteor.__init__ is not called: it would spawn java with the parent's locale and an unread stderr pipe.
        self.lock = threading.Lock()
        self.meteor_cmd = meteor_command(java)
        self._stderr = tempfile.TemporaryFile()
        self._timed_out = False
        try:
            self.meteor_p = subprocess.Popen(
                self.meteor_cmd, cwd=_METEOR_DIR, env=meteor_environment(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            )  # fmt: skip
        except BaseException:
            self._stderr.close()
            raise

    def score(self, gts: dict[int, list[str]], res: dict[int, list[str]], timeout_s: float) -> tuple[float, list]:
        """Corpus and segment scores; the JVM is killed if it takes longer than ``timeout_s``."""
        watchdog = threading.Timer(timeout_s, self._expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            return self.compute_score(gts, res)
        finally:
            watchdog.cancel()

    def _expire(self) -> None:
        self._timed_out = True
        with suppress(OSError):
            self.meteor_p.kill()

    def shutdown(self) -> None:
        """End the JVM: close its stdin (it exits at end of input), kill it if it lingers, reap it."""
        process = getattr(self, "meteor_p", None)
        if process is None:
            return
        if process.poll() is None:
            with suppress(OSError):
                process.stdin.close()
            try:
                process.wait(timeout=METEOR_SHUTDOWN_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            with suppress(OSError):
                stream.close()

    def failure_reason(self, error: Exception, timeout_s: float) -> str:
        """One line saying why METEOR failed (after shutting the JVM down)."""
        self.shutdown()
        if self._timed_out:
            return f"METEOR timed out after {timeout_s:.0f} s (meteor-1.5 jar did not answer)"
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line]
        errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
        if errors or lines:
            return f"METEOR failed: {(errors or lines)[0][:200]}"
        status = self.meteor_p.returncode
        return f"METEOR failed: java exited with status {status} ({type(error).__name__}: {error})"[:300]

    def close(self) -> None:
        """Shut the JVM down and release the stderr log; safe to call twice."""
        self.shutdown()
        with suppress(Exception):
            self._stderr.close()

    def __del__(self) -> None:
        with suppress(Exception):
            self.close()


def _start_meteor() -> _MeteorProcess | MetricResult:
    """Start the METEOR JVM early (it loads its paraphrase table while the other metrics run)."""
    java = shutil.which("java")
    if java is None:
        return MetricResult.missing(JAVA_MISSING)
    try:
        return _MeteorProcess(java)
    except OSError as error:
        return MetricResult.missing(f"METEOR failed: cannot start java ({error})")


def _meteor_timeout(n_studies: int) -> float:
    return 300.0 + 0.2 * n_studies


def _score_meteor(process: _MeteorProcess, hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    gts = {i: [_meteor_text(ref) for ref in study] for i, study in enumerate(refs)}
    res = {i: [_meteor_text(hyp)] for i, hyp in enumerate(hyps)}
    timeout_s = _meteor_timeout(len(hyps))
    try:
        corpus, segments = process.score(gts, res, timeout_s)
    except (OSError, ValueError) as error:
        return MetricResult.missing(process.failure_reason(error, timeout_s))
    scores = [float(x) for x in segments]
    return MetricResult(
        value=float(corpus),
        per_sample=scores,
        details={
            "implementation": "pycocoevalcap Meteor (meteor-1.5 jar, -l en -norm)",
            "aggregate": "jar corpus aggregate (differs slightly from the segment mean)",
            "segment_mean": float(np.mean(scores)),
            "resampling": "mean of segment scores (the CI is on the segment mean)",
            "n_studies": len(hyps),
        },
    )


# ---------------------------------------------------------------------------------------------- entry point


def score_nlg(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    metrics: Iterable[str] = NLG_METRICS,
) -> dict[str, MetricResult]:
    """Score aligned predictions against references (one string or a list of strings per study).

    Returns one ``MetricResult`` per requested metric, in the requested order. METEOR is unavailable (never
    zero) when Java is missing or the jar fails; the other metrics are unaffected.
    """
    wanted = _resolve_metrics(metrics)
    hyps, refs = _prepare(predictions, references)
    meteor = _start_meteor() if "meteor" in wanted else None
    try:
        results: dict[str, MetricResult] = {}
        if any(name.startswith("bleu_") for name in wanted):
            results.update(_score_bleu(hyps, refs, wanted))
        if "rouge_l" in wanted:
            results["rouge_l"] = _score_rouge(hyps, refs)
        if "cider" in wanted:
            results["cider"] = _score_cider(hyps, refs)
        if isinstance(meteor, _MeteorProcess):
            results["meteor"] = _score_meteor(meteor, hyps, refs)
        elif isinstance(meteor, MetricResult):
            results["meteor"] = meteor
    finally:
        if isinstance(meteor, _MeteorProcess):
            meteor.close()
    return {name: results[name] for name in wanted}
