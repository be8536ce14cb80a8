"""The report as a document: sections of text, tables of shown cells and images, built from a board.

Both writers (:mod:`rrgbench.report.markdown`, :mod:`rrgbench.report.html`) render this one document, so
the Markdown and the HTML page always say the same thing; cells are plain text here and each writer
escapes them for its format.

Sections, in order: the ranking (sorted by the headline metric: mean, sd over seeds, the 95% CI half-width
of one run, the paired test against the top row, the degenerate-model flag), language, clinical and cost
(each its own table, all-n/a columns collapsed into one line), report diversity, the clinical F1 per
observation, ablations (each against its base, with the paired test), learning curves, how significance
was tested, and the environment. Footnotes give every n/a its reason.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rrgbench.report.board import DEGENERATE_SHARE, Board, Column
from rrgbench.report.records import labeler_of, seeds_of
from rrgbench.report.significance import ALPHA, METHOD, Comparison

HIDDEN_PREFIX = "Not shown (n/a for every model):"
NOT_COMPARABLE = ("Clinical columns use the chexpert-rules labeler (rrgbench's rule-based CheXpert labeler): "
                  "they are not comparable with CE figures computed with CheXbert, which most papers report.")


@dataclass(frozen=True)
class Shown:
    """One table cell as shown: plain text (writers escape it), bold or not, an optional footnote label."""

    text: str = ""
    bold: bool = False
    note: str | None = None
    na: bool = False
    extra: str | None = None  # a second part that may wrap below the first (``± sd``)


@dataclass
class Table:
    header: list[str]
    rows: list[list[Shown]]


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)  # paragraphs before the table (plain text)
    table: Table | None = None
    after: list[str] = field(default_factory=list)  # paragraphs after the table
    images: list[tuple[str, str]] = field(default_factory=list)  # (file name, alt text)
    items: list[str] = field(default_factory=list)  # a bullet list (environment)


@dataclass
class Document:
    title: str
    intro: list[str]
    sections: list[Section]
    notes: list[tuple[str, str]]  # footnote label, reason


class Footnotes:
    """Footnote labels per (column, reason): ``key`` for the first reason of a column, ``key-2`` ..."""

    def __init__(self) -> None:
        self.labels: dict[tuple[str, str], str] = {}
        self.count: dict[str, int] = defaultdict(int)

    def label(self, key: str, reason: str) -> str:
        key = re.sub(r"[^\w.-]", "_", key)
        reason = one_line(reason)
        if (key, reason) not in self.labels:
            self.count[key] += 1
            self.labels[(key, reason)] = key if self.count[key] == 1 else f"{key}-{self.count[key]}"
        return self.labels[(key, reason)]

    def items(self) -> list[tuple[str, str]]:
        return [(label, reason) for (_, reason), label in self.labels.items()]


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def format_value(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def plain(text: object) -> Shown:
    return Shown(str(text))


def na(note: str) -> Shown:
    return Shown("n/a", note=note, na=True)


# -- cells ------------------------------------------------------------------------------------------------
def mean_sd_cell(board: Board, label: str, column: Column, notes: Footnotes, with_sd: bool = True) -> Shown:
    """``mean ± sd`` (no ± for one run; none at all without ``with_sd``), bold when best, footnoted when
    (partly) unavailable."""
    cell = board.cells[(label, column.key)]
    note = notes.label(column.key, cell.reason) if cell.reason else None
    if cell.mean is None:
        return na(note or notes.label(column.key, "not computed"))
    sd = f"± {format_value(cell.sd, column.digits)}" if with_sd and cell.sd is not None else None
    return Shown(format_value(cell.mean, column.digits), round(cell.mean, column.digits) == board.best(column), note,
                 extra=sd)


def number_cell(value: float | None, digits: int, note: str | None = None) -> Shown:
    return plain(format_value(value, digits)) if value is not None else na(note or "")


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def test_cell(test: Comparison | None, column: Column, notes: Footnotes) -> Shown:
    """``▼ p=…`` / ``▲ p=…`` significantly worse / better, ``≈ p=…`` not significant (Holm-adjusted p)."""
    if test is None:
        return plain("reference")
    if test.p_holm is None or test.delta is None:
        return na(notes.label("test", test.note or "no test"))
    if not test.significant:
        return plain(f"≈ {p_text(test.p_holm)}")
    better = (test.delta > 0) == column.higher_is_better
    return plain(f"{'▲' if better else '▼'} {p_text(test.p_holm)}")


# -- sections -----------------------------------------------------------------------------------------------
def legend(board: Board) -> str:
    return (f"Rows are sorted by {board.sort.title} (best first; unavailable last). A value is the mean over the "
            "row's runs; `± x` is the sample standard deviation over seeds (no ± for a single run). The half-width "
            "of one run's 95% bootstrap CI has its own column in the ranking and in leaderboard.csv. Bold: the best "
            "value of a column. ↑ higher is better, ↓ lower is better. n/a: unavailable; its footnote gives the "
            f"reason. vs #1: paired test against the top row (▼/▲ significantly worse/better, ≈ not significant "
            f"at α = {ALPHA}, Holm-adjusted p; see Significance).")


def ranking_metrics(board: Board) -> list[Column]:
    return [board.sort, *(board.column(k) for k in board.tested if k != board.sort.key)]


def ranking(board: Board, notes: Footnotes) -> Section:
    columns = ranking_metrics(board)
    header = ["model", "#", "runs", "seeds"]
    for column in columns:  # headers name their metric: one meaning per column
        header += [column.title, f"sd ({column.key})"]
        if column.getter is None:
            header.append(f"±95% CI of one run ({column.key})")
        if column.key in board.tested:
            header.append(f"vs #1 ({column.key})")
    header.append("reports")
    rows = []
    for rank, label in enumerate(board.rows, 1):
        runs = board.runs[label]
        row = [plain(label), plain(rank), plain(len(runs)), plain(seeds_of(runs))]
        for column in columns:
            cell = board.cells[(label, column.key)]
            mean = mean_sd_cell(board, label, column, notes, with_sd=False)
            row += [mean, number_cell(cell.sd, column.digits, notes.label("sd", "a single run has no sd over seeds"))]
            if column.getter is None:
                row.append(number_cell(cell.ci_half, column.digits,
                                       notes.label("ci", "no bootstrap CI in these records")))
            if column.key in board.tested:
                test = board.tests.vs_best.get((label, column.key)) if board.tests else None
                if board.tests is None:
                    row.append(na(notes.label("test", "significance tests were not computed for this report")))
                else:
                    row.append(test_cell(test, column, notes))
        row.append(flag_cell(board, label, notes))
        rows.append(row)
    text = [f"{len(board.rows)} models, {len(board.records)} runs."]
    degenerate = [label for label in board.rows if board.diversity[label].degenerate]
    if degenerate:
        text.append(f"{len(degenerate)} of {len(board.rows)} models are flagged degenerate (reports: degenerate): "
                    f"they write one report for at least {DEGENERATE_SHARE:.0%} of the test studies "
                    "(see Report diversity); their clinical scores do not come from reading the image.")
    return Section("Ranking", text, Table(header, rows))


def flag_cell(board: Board, label: str, notes: Footnotes) -> Shown:
    found = board.diversity[label]
    if found.degenerate is None:
        return na(notes.label("reports", found.reason or "no prediction statistics"))
    return plain("degenerate" if found.degenerate else "varied")


def metric_section(board: Board, name: str, title: str, notes: Footnotes, intro: Sequence[str] = ()) -> Section | None:
    columns = board.section(name)
    hidden = board.hidden(name)
    if not columns and not hidden:
        return None
    labelers = name == "clinical" and len(board.labelers) > 1  # one labeler: said above the table instead
    header = ["model", *(["CE labeler"] if labelers else []), *(c.title for c in columns)]
    rows = []
    for label in board.rows:
        row = [plain(label), *([plain(labeler_of(board.runs[label]))] if labelers else [])]
        rows.append(row + [mean_sd_cell(board, label, c, notes) for c in columns])
    after = []
    by_reason: dict[str, list[str]] = {}
    for column, reason in hidden:
        by_reason.setdefault(one_line(reason), []).append(column.key)
    for reason, keys in by_reason.items():
        after.append(f"{HIDDEN_PREFIX} {', '.join(f'`{k}`' for k in keys)}: {reason}")
    return Section(title, list(intro), Table(header, rows) if columns else None, after)


def clinical_intro(board: Board) -> list[str]:
    found = [f"CE labeler: {', '.join(board.labelers) or 'n/a'}."]
    return found + ([NOT_COMPARABLE] if "chexpert-rules" in board.labelers else [])


def cost_intro() -> str:
    return ("Latency: median seconds to generate one report at batch 1 with the run's decoding settings; "
            "throughput: studies/s on a test batch at the evaluation batch size; memory share: the memory "
            "modules' share of a teacher-forced forward pass; decode overhead: fixed-length decoding with "
            "memory against the no-memory counterpart recorded in each run (efficiency.retrieval.vs_no_memory).")


def diversity_section(board: Board, notes: Footnotes) -> Section:
    intro = ("Share of distinct test reports and of the single most frequent one (means over the row's runs, from "
             f"record.predictions). Flag: degenerate when the most frequent report covers at least "
             f"{DEGENERATE_SHARE:.0%} of the studies.")
    if all(board.diversity[label].degenerate is None for label in board.rows):
        return Section("Report diversity", [intro, "No record of this board has prediction statistics (records "
                                                   "written before they were kept)."])
    header = ["model", "distinct reports (share)", "most frequent report (share)", "flag", "most frequent report"]
    rows = []
    for label in board.rows:
        found = board.diversity[label]
        if found.degenerate is None:
            note = notes.label("reports", found.reason or "no prediction statistics")
            rows.append([plain(label), na(note), na(note), na(note), na(note)])
            continue
        text = one_line(found.most_frequent or "")
        rows.append([plain(label), plain(f"{found.distinct_share:.3f}"), plain(f"{found.most_frequent_share:.3f}"),
                     plain("degenerate" if found.degenerate else "varied"),
                     plain(text if len(text) <= 90 else text[:89] + "…")])
    return Section("Report diversity", [intro], Table(header, rows))


def observation_section(board: Board, notes: Footnotes, images: Mapping[str, bytes]) -> Section:
    title = "Clinical F1 per observation"
    if not board.observations:
        return Section(title, ["No record of this board has a per-observation table "
                               "(record.tables.ce_per_observation)."])
    header = ["model", *board.observations]
    best = {o: max((board.per_observation[r][o][0] for r in board.rows if o in board.per_observation[r]), default=None)
            for o in board.observations}
    rows = []
    for label in board.rows:
        row = [plain(label)]
        for observation in board.observations:
            found = board.per_observation[label].get(observation)
            if found is None:
                row.append(na(notes.label("per-observation", "no per-observation table in these records")))
            else:
                row.append(Shown(f"{found[0]:.3f}", round(found[0], 3) == round(best[observation] or 0.0, 3),
                                 extra=f"± {found[1]:.3f}" if found[1] is not None else None))
        rows.append(row)
    supports = {o: s for r in board.rows for o, (_, _, s) in board.per_observation[r].items() if s is not None}
    support = ", ".join(f"{o} {supports[o]}" for o in board.observations if o in supports)
    return Section(title, [
        "F1 of each CheXpert observation (record.tables.ce_per_observation; mean ± sd over seeds; 0 when an "
        "observation is never predicted)." + (f" Reference positives per observation (first run): {support}."
                                              if support else "")],
        Table(header, rows), images=_images(images, ("ce_per_observation.png", "per-observation F1 heatmap")))


def ablation_section(board: Board, notes: Footnotes, images: Mapping[str, bytes]) -> Section | None:
    if not board.families or not board.tested:
        return None
    columns = [board.column(k) for k in board.tested]
    header = ["variant", "base"]
    for column in columns:
        header += [f"Δ {column.key}", "95% CI of Δ (paired)", "vs base"]
    rows = []
    for base, variants in board.families.items():
        for variant in variants:
            row = [plain(variant), plain(base)]
            for column in columns:
                a, b = board.cells[(variant, column.key)], board.cells[(base, column.key)]
                diff = a.mean - b.mean if a.mean is not None and b.mean is not None else None
                row.append(Shown(f"{diff:+.4f}") if diff is not None else
                           na(notes.label(column.key, a.reason or b.reason or "not computed")))
                test = board.tests.ablations.get((base, variant, column.key)) if board.tests else None
                if test is None or test.ci95 is None:
                    row.append(na(notes.label("test", test.note if test and test.note else "no paired test")))
                else:
                    row.append(plain(f"[{test.ci95[0]:+.4f}, {test.ci95[1]:+.4f}]"))
                row.append(test_cell(test, column, notes) if test is not None else
                           na(notes.label("test", "significance tests were not computed for this report")))
            rows.append(row)
    return Section("Ablations", [
        "Each ablation (record.ablation_of) against its base: Δ = variant − base of the means shown above; the "
        "95% CI of Δ and the test come from the paired bootstrap on pooled (seed, study) units. The p-values "
        "are Holm-adjusted over the ablations, the CIs are not: a CI that excludes 0 next to ≈ is a difference "
        "that does not survive the correction for the number of comparisons."],
        Table(header, rows), images=_images(images, ("ablations.png", "ablation deltas")))


def curves_section(board: Board, images: Mapping[str, bytes]) -> Section:
    without = [label for label in board.rows if label not in board.curves]
    text = ["Validation CE micro-F1 and BLEU-4 during training (record.validation.history), against training "
            "steps and against training wall time (validation and checkpoints excluded); one line per model, "
            "the mean over its seeds with a ± sd band."]
    if without:
        text.append(f"No validation history in the records of: {', '.join(without)}.")
    return Section("Learning curves", text, images=_images(images, ("learning_curves.png", "learning curves")))


def significance_section(board: Board) -> Section:
    text = [f"Method: {METHOD}. Each row is tested against the top row (vs #1) and each ablation against its "
            f"base, on {', '.join(board.tested) or 'no metric'}: both rows' (seed, study) units are rescored with "
            "the scoring engine, pairing runs of the same seed (rows with no seed in common are paired only when "
            "each has one run). Records without scored studies (version 1, or written before studies were kept) "
            "get no test; the footnote says so."]
    if board.tests is not None:
        tested = [t for t in [*board.tests.vs_best.values(), *board.tests.ablations.values()] if t.p is not None]
        untested = len(board.tests.vs_best) + len(board.tests.ablations) - len(tested)
        text.append(f"{len(tested)} comparisons tested, {untested} without a test.")
    return Section("Significance", text)


def environment_items(board: Board) -> list[str]:
    records = board.records
    devices = sorted({f"{r.environment.device} ({r.environment.device_name})" for r in records
                      if r.environment.device})
    threads = sorted({str(t) for r in records if (t := r.efficiency.device.get("torch_threads"))})
    commits = sorted({f"{c['commit'][:10]}{' (dirty)' if c.get('dirty') else ''}" for r in records
                      if isinstance(c := r.environment.git, Mapping) and c.get("commit")})
    profiles = sorted({str(r.profile) for r in records if r.profile})
    created = sorted(r.created for r in records if r.created)
    return [f"runs: {len(records)}" + (f", created {created[0]} … {created[-1]}" if created else ""),
            f"devices: {', '.join(devices) or 'n/a'}" + (f"; torch threads: {', '.join(threads)}" if threads else ""),
            f"profiles: {', '.join(profiles) or 'n/a'}; git: {', '.join(commits) or 'n/a'}",
            f"CE labeler: {', '.join(board.labelers) or 'n/a'}"]


def _images(images: Mapping[str, bytes], *wanted: tuple[str, str]) -> list[tuple[str, str]]:
    return [(name, alt) for name, alt in wanted if name in images]


def document(board: Board, images: Mapping[str, bytes]) -> Document:
    """The whole report of one board (``images``: the plots written next to it, by file name)."""
    notes = Footnotes()
    sections = [ranking(board, notes)]
    sections[0].images = _images(images, ("metrics.png", "metrics, sorted"))
    for name, title, intro in (("language", "Language", []), ("clinical", "Clinical", clinical_intro(board)),
                               ("other", "Other metrics", [])):
        found = metric_section(board, name, title, notes, intro)
        if found is not None:
            sections.append(found)
    cost = metric_section(board, "cost", "Cost", notes, [cost_intro()])
    if cost is not None:
        cost.images = _images(images, ("quality_vs_latency.png", "quality against latency"),
                              ("retrieval_overhead.png", "retrieval overhead against memory size"))
        sections.append(cost)
    sections.append(diversity_section(board, notes))
    for found in (observation_section(board, notes, images), ablation_section(board, notes, images)):
        if found is not None:
            sections.append(found)
    sections += [curves_section(board, images), significance_section(board),
                 Section("Environment", items=environment_items(board))]
    intro = [legend(board), *([NOT_COMPARABLE] if "chexpert-rules" in board.labelers else [])]
    return Document(f"Leaderboard: {board.dataset}", intro, sections, notes.items())
