"""NLG metrics of generated reports: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D, as pycocoevalcap computes them.

Owns ``score_nlg`` and the bootstrap behaviour of each of these metrics.

Protocol: texts are scored exactly as given - no PTB tokenizer, no lowercasing, no whitespace folding, and
references are never truncated - so every metric equals pycocoevalcap's on the same strings, whatever their
whitespace. Each metric tokenizes as pycocoevalcap does: BLEU and CIDEr-D split on any run of whitespace,
ROUGE-L splits on single spaces (a double, leading or trailing space is an empty token, which counts in the
lengths and can match an empty token of the other side; a tab or newline stays inside its token) and METEOR
leaves tokenization to the jar (``-norm``; measured whitespace-invariant: spaces, tabs and double spaces give
the same segment scores as the folded texts). Folding is the caller's choice (``rrgbench score --clean
whitespace``; runs score R2Gen's re-joined tokens, :func:`rrgbench.data.cleaning.r2gen_text`).
Two departures, both where pycocoevalcap cannot score the input: a blank (empty or whitespace-only)
reference is dropped, and every study needs at least one non-blank reference; METEOR's one-line-per-segment
stdin protocol cannot carry a line break or a ``|||`` inside a reference, so those become spaces before the
jar sees them (pycocoevalcap would desynchronise or split the reference). Hypotheses reach the jar as
pycocoevalcap's ``Meteor`` passes them (it deletes ``|||``), line breaks aside. An empty prediction scores 0
on BLEU, METEOR and CIDEr-D; on ROUGE-L it scores 0 unless a reference has an empty token (pycocoevalcap's
arithmetic). Per-study scores are computed on the same strings as the corpus values.

- BLEU-n: pycocoevalcap's ``BleuScorer`` with the 'closest' reference length; the corpus value and the
  per-study scores are pycocoevalcap's own. ``resample`` recomputes the *corpus* BLEU exactly as
  pycocoevalcap would on the resampled multiset of studies, from per-study sufficient statistics (clipped
  n-gram matches and guesses per order, hypothesis length, the closest reference length) and pycocoevalcap's
  tiny/small constants (``statistics.AdditiveResampler``; vectorised).
- METEOR: pycocoevalcap's ``Meteor`` (meteor-1.5 jar), spawned with an English UTF-8 locale and always shut
  down afterwards. ``value`` is the jar's corpus aggregate; ``per_sample`` are its segment scores. The jar's
  aggregate differs from the mean of the segment scores; the bootstrap resamples the segment mean shifted
  by that observed gap, so the CI surrounds the reported value. Without Java, or if the jar fails, METEOR
  is unavailable (with the reason) and the other metrics still run. A ``MeteorScorer`` keeps one JVM
  (seconds to start) for several ``score_nlg`` calls.
- ROUGE-L and CIDEr-D are re-implemented here with the arithmetic of pycocoevalcap's ``Rouge`` (beta 1.2,
  max precision and recall over references) and ``Cider`` (CIDEr-D: n<=4, sigma 6, clipped tf-idf, x10, the
  length penalty counting bigrams as pycocoevalcap does); tests check them against pycocoevalcap.
  pycocoevalcap's pure-Python versions take about 9 s for 4,000 reports of 50 words; these take about half a
  second (ROUGE-L uses a bit-parallel LCS). Both are means of per-study scores, and their bootstrap is the
  mean of resampled per-study scores.
- CIDEr-D resampling choice: the document frequencies (IDF) stay fixed to the full test set's references. An
  exact recompute would rebuild them from each resampled multiset of references; that cannot be vectorised
  cheaply. With fixed IDF the CI covers the variation of per-study scores but not the IDF's own variation (a
  second-order effect on test sets of hundreds of studies or more). ``details['resampling']`` says so.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
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
    "METEOR needs Java >= 8 on PATH (java not found); "
    "install a JRE, e.g. apt-get install default-jre-headless"
)
METEOR_LOCALE = "C.UTF-8"
METEOR_SHUTDOWN_S = 10.0

_TOKENIZATION = "whitespace split of the text as given (no PTB tokenizer; R2Gen protocol)"
_METEOR_DIR = os.path.dirname(os.path.abspath(_meteor_module.__file__))


# ---------------------------------------------------------------------------------------------- inputs


def _reference_list(item: str | Sequence[str], position: int) -> list[str]:
    texts = [item] if isinstance(item, str) else list(item)
    if not all(isinstance(text, str) for text in texts):
        raise DataError(f"references of study {position} must be strings")
    kept = [text for text in texts if text.strip()]
    if not kept:
        raise DataError(f"study {position} has no non-blank reference report")
    return kept


def _prepare(
    predictions: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]
) -> tuple[list[str], list[list[str]]]:
    """Validate inputs: predictions as given and each study's non-blank references as given."""
    if len(predictions) != len(references):
        raise DataError(
            f"{len(predictions)} predictions but {len(references)} references; they must be aligned"
        )
    if not predictions:
        raise DataError("no studies to score")
    for position, text in enumerate(predictions):
        if not isinstance(text, str):
            raise DataError(f"prediction of study {position} is {type(text).__name__}, not a string")
    hyps = list(predictions)
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
        [
            comps["testlen"],
            _closest_reference_length(comps["reflen"], comps["testlen"]),
            *comps["guess"],
            *comps["correct"],
        ]
        for comps in cooked_tests
    ]
    return np.asarray(rows, dtype=np.float64)


def corpus_bleu(totals: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-``order`` of summed statistics ``[R, 2 + 2*BLEU_ORDER]``, in pycocoevalcap's arithmetic."""
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


def _score_bleu(
    hyps: Sequence[str], refs: Sequence[Sequence[str]], wanted: Sequence[str]
) -> dict[str, MetricResult]:
    scorer = BleuScorer(n=BLEU_ORDER)
    for hyp, ref in zip(hyps, refs, strict=True):
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
    scores = [rouge_l(hyp, ref) for hyp, ref in zip(hyps, refs, strict=True)]
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


@dataclass(frozen=True)
class NgramTable:
    """Distinct word n-grams of every document of a corpus: one entry per (document, n-gram), sorted."""

    doc: np.ndarray  # [E] document of the entry
    gram: np.ndarray  # [E] n-gram id, unique across orders
    order: np.ndarray  # [E] n-gram order minus one
    count: np.ndarray  # [E] term frequency of the n-gram in the document (float64)
    n_grams: int  # number of n-gram ids (at least 1)
    length: np.ndarray  # [D] tokens per document


def _token_ids(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Concatenated integer token ids of all texts (whitespace split), tokens per text, vocabulary size."""
    words = [text.split() for text in texts]
    vocabulary = {word: i for i, word in enumerate(dict.fromkeys(itertools.chain.from_iterable(words)))}
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    flat = map(vocabulary.__getitem__, itertools.chain.from_iterable(words))
    return np.fromiter(flat, dtype=np.int64, count=int(lengths.sum())), lengths, len(vocabulary)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; numpy's hash-based ``unique`` is slow on sparse int64 keys)."""
    ordered = np.sort(keys)
    keep = np.ones(ordered.size, dtype=bool)
    keep[1:] = ordered[1:] != ordered[:-1]
    return ordered[keep]


def _extend_ids(
    prefix_ids: np.ndarray, tokens: np.ndarray, starts: np.ndarray, order: int, vocabulary_size: int
) -> tuple[np.ndarray, int]:
    """Dense ids of the n-grams at ``starts``: an n-gram is its (n-1)-gram prefix plus the next token."""
    keys = prefix_ids[starts] * vocabulary_size + tokens[starts + order - 1]
    unique_keys, dense = np.unique(keys, return_inverse=True)
    ids = np.full_like(tokens, -1)
    ids[starts] = dense
    return ids, unique_keys.size


def ngram_table(texts: Sequence[str], max_order: int = CIDER_ORDER) -> NgramTable:
    """Count the word n-grams (n = 1..max_order) of every text, vectorised over the whole corpus."""
    tokens, lengths, vocabulary_size = _token_ids(texts)
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    first_token = np.cumsum(lengths) - lengths
    remaining = lengths[doc] - (np.arange(tokens.size) - first_token[doc])  # tokens left from each position
    ids, n_ids, base = tokens, vocabulary_size, 0
    docs, grams, orders = [], [], []
    for order in range(1, max_order + 1):
        starts = np.nonzero(remaining >= order)[0]
        if order > 1:
            ids, n_ids = _extend_ids(ids, tokens, starts, order, max(vocabulary_size, 1))
        docs.append(doc[starts])
        grams.append(ids[starts] + base)
        orders.append(np.full(starts.size, order - 1, dtype=np.int64))
        base += n_ids
    n_grams = max(base, 1)
    keys = np.concatenate(docs) * n_grams + np.concatenate(grams)
    entry_keys, first, count = np.unique(keys, return_index=True, return_counts=True)
    return NgramTable(
        doc=entry_keys // n_grams, gram=entry_keys % n_grams, order=np.concatenate(orders)[first],
        count=count.astype(np.float64), n_grams=n_grams, length=lengths,
    )  # fmt: skip


def _sum_by_row_and_order(
    rows: np.ndarray, orders: np.ndarray, values: np.ndarray, n_rows: int
) -> np.ndarray:
    """``[n_rows, CIDER_ORDER]`` sums of ``values`` grouped by (row, order)."""
    flat = np.bincount(rows * CIDER_ORDER + orders, weights=values, minlength=n_rows * CIDER_ORDER)
    return flat.reshape(n_rows, CIDER_ORDER)


def _clipped_dot(table: NgramTable, value: np.ndarray, study_of_doc: np.ndarray, n: int) -> np.ndarray:
    """Per reference and order: sum over shared n-grams of min(hyp, ref) * ref tf-idf (CIDEr-D's clipping)."""
    is_ref = table.doc >= n
    hyp_keys = table.doc[~is_ref] * table.n_grams + table.gram[~is_ref]  # hypothesis of study s is document s
    ref_keys = study_of_doc[table.doc[is_ref]] * table.n_grams + table.gram[is_ref]
    if hyp_keys.size == 0:
        return np.zeros((study_of_doc.size - n, CIDER_ORDER))
    position = np.minimum(np.searchsorted(hyp_keys, ref_keys), hyp_keys.size - 1)
    hyp_value, ref_value = value[~is_ref][position], value[is_ref]
    shared = hyp_keys[position] == ref_keys
    contribution = np.where(shared, np.minimum(hyp_value, ref_value) * ref_value, 0.0)
    return _sum_by_row_and_order(
        table.doc[is_ref] - n, table.order[is_ref], contribution, study_of_doc.size - n
    )


def cider_d(hyps: Sequence[str], refs: Sequence[Sequence[str]], sigma: float = CIDER_SIGMA) -> np.ndarray:
    """Per-study CIDEr-D with pycocoevalcap's arithmetic; IDF from the references of all studies.

    Documents are the hypotheses (``0..N-1``) followed by every reference. Per order, a study gets the clipped
    tf-idf cosine of its hypothesis with each reference times exp(-delta^2 / (2 sigma^2)) (delta: the
    difference of their bigram counts, as pycocoevalcap computes the length), summed over references; the
    orders are averaged, divided by the number of references and multiplied by 10.
    """
    n = len(hyps)
    references_per_study = np.array([len(study) for study in refs], dtype=np.int64)
    ref_study = np.repeat(np.arange(n, dtype=np.int64), references_per_study)
    study_of_doc = np.concatenate([np.arange(n, dtype=np.int64), ref_study])
    table = ngram_table(list(hyps) + [ref for study in refs for ref in study])
    is_ref = table.doc >= n
    # document frequency: in how many studies' references the n-gram occurs (pycocoevalcap's df)
    study_grams = _distinct(study_of_doc[table.doc[is_ref]] * table.n_grams + table.gram[is_ref])
    frequency = np.bincount(study_grams % table.n_grams, minlength=table.n_grams)
    weight = np.log(float(n)) - np.log(np.maximum(frequency, 1).astype(np.float64))
    value = table.count * weight[table.gram]
    norm = np.sqrt(_sum_by_row_and_order(table.doc, table.order, value * value, study_of_doc.size))
    dot = _clipped_dot(table, value, study_of_doc, n)
    hyp_norm, ref_norm = norm[ref_study], norm[n:]
    cosine = np.divide(dot, hyp_norm * ref_norm, out=dot.copy(), where=(hyp_norm != 0) & (ref_norm != 0))
    bigrams = np.maximum(table.length - 1, 0).astype(np.float64)
    delta = bigrams[ref_study] - bigrams[n:]
    similarity = cosine * (np.e ** (-(delta**2) / (2 * sigma**2)))[:, None]
    per_study = np.zeros((n, CIDER_ORDER))
    np.add.at(per_study, ref_study, similarity)
    return per_study.sum(axis=1) / CIDER_ORDER / references_per_study * 10.0


def _score_cider(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    scores = [float(x) for x in cider_d(hyps, refs)]
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


def _meteor_line(text: str) -> str:
    """``text`` with its line breaks as spaces: the jar reads one segment per line (Java's ``readLine`` ends a
    line at ``\\n``, ``\\r`` or ``\\r\\n``), so a line break inside a text would desynchronise the protocol."""
    return text.replace("\r", " ").replace("\n", " ")


def _meteor_reference(text: str) -> str:
    """A reference for the jar: line breaks and METEOR's ``|||`` field separator as spaces (pycocoevalcap
    leaves a reference's ``|||`` in, which splits it into two references)."""
    return _meteor_line(text.replace("|||", " "))


class _MeteorProcess(Meteor):
    """pycocoevalcap's Meteor with a controlled child environment, stderr log, watchdog and a real close."""

    def __init__(self, java: str) -> None:
        # Meteor.__init__ is not called: it spawns java with the parent's locale and an unread stderr pipe.
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

    def score(
        self, gts: dict[int, list[str]], res: dict[int, list[str]], timeout_s: float
    ) -> tuple[float, list]:
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


def _meteor_timeout(n_studies: int) -> float:
    return 300.0 + 0.2 * n_studies


def _meteor_result(corpus: float, segments: Sequence[float]) -> MetricResult:
    """The jar's corpus METEOR with its segment scores. Resampling (decision): the mean of the resampled
    segment scores shifted by the observed gap ``corpus - segment mean``, so that the bootstrap interval
    surrounds the reported value (the plain segment-mean interval can miss it entirely: measured 0.267
    against [0.274, 0.297]) while its width is the segment mean's."""
    scores = np.asarray([float(x) for x in segments], dtype=float)
    gap = float(corpus) - float(scores.mean())

    def resample(indices: np.ndarray) -> np.ndarray:
        return scores[indices].mean(axis=1) + gap

    return MetricResult(
        value=float(corpus),
        per_sample=scores.tolist(),
        resample=resample,
        details={
            "implementation": "pycocoevalcap Meteor (meteor-1.5 jar, -l en -norm)",
            "aggregate": "jar corpus aggregate (differs slightly from the segment mean)",
            "segment_mean": float(scores.mean()),
            "resampling": "mean of resampled segment scores + (corpus - segment mean)",
            "n_studies": len(scores),
        },
    )


class MeteorScorer:
    """A running METEOR 1.5 JVM, reusable across ``score_nlg`` calls; use it as a context manager.

    Starting the JVM (loading the paraphrase table) takes seconds, so it starts on construction and loads
    while other work runs. Without Java, or once the jar has failed, ``unavailable`` holds the reason and
    ``score`` returns an unavailable ``MetricResult``. ``close`` ends the JVM; it is safe to call twice.
    """

    def __init__(self) -> None:
        self.unavailable: str | None = None
        self._process: _MeteorProcess | None = None
        java = shutil.which("java")
        if java is None:
            self.unavailable = JAVA_MISSING
            return
        try:
            self._process = _MeteorProcess(java)
        except OSError as error:
            self.unavailable = f"METEOR failed: cannot start java ({error})"

    def score(
        self, predictions: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]
    ) -> MetricResult:
        """METEOR of aligned predictions and references (inputs as for ``score_nlg``)."""
        hyps, refs = _prepare(predictions, references)
        if self._process is None or self.unavailable is not None:
            return MetricResult.missing(self.unavailable or "METEOR scorer is closed")
        gts = {i: [_meteor_reference(ref) for ref in study] for i, study in enumerate(refs)}
        res = {i: [_meteor_line(hyp)] for i, hyp in enumerate(hyps)}
        timeout_s = _meteor_timeout(len(hyps))
        try:
            corpus, segments = self._process.score(gts, res, timeout_s)
        except (OSError, ValueError) as error:
            self.unavailable = self._process.failure_reason(error, timeout_s)
            self.close()
            return MetricResult.missing(self.unavailable)
        return _meteor_result(corpus, segments)

    def close(self) -> None:
        """End the JVM and release its resources."""
        process, self._process = self._process, None
        if process is not None:
            process.close()

    def __enter__(self) -> MeteorScorer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------- entry point


def score_nlg(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    metrics: Iterable[str] = NLG_METRICS,
    *,
    meteor: MeteorScorer | None = None,
) -> dict[str, MetricResult]:
    """Score aligned predictions against references (one string or a list of strings per study).

    Returns one ``MetricResult`` per requested metric, in the requested order. METEOR is unavailable (never
    zero) when Java is missing or the jar fails; the other metrics are unaffected. Pass a running
    ``MeteorScorer`` to reuse its JVM across calls; otherwise one is started (before the other metrics, so
    that the JVM loads meanwhile) and closed before returning.
    """
    wanted = _resolve_metrics(metrics)
    hyps, refs = _prepare(predictions, references)
    owned = MeteorScorer() if "meteor" in wanted and meteor is None else None
    try:
        results: dict[str, MetricResult] = {}
        if any(name.startswith("bleu_") for name in wanted):
            results.update(_score_bleu(hyps, refs, wanted))
        if "rouge_l" in wanted:
            results["rouge_l"] = _score_rouge(hyps, refs)
        if "cider" in wanted:
            results["cider"] = _score_cider(hyps, refs)
        scorer = meteor if meteor is not None else owned
        if scorer is not None and "meteor" in wanted:
            from rrgbench.logs import phase

            with phase(f"scoring: METEOR of {len(hyps)} reports (Java)"):
                results["meteor"] = scorer.score(hyps, refs)
    finally:
        if owned is not None:
            owned.close()
    return {name: results[name] for name in wanted}
