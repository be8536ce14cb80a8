"""The report's plots, as PNG bytes, from a board.

``metrics.png``: one panel per headline metric, bars sorted best first, error bars = sd over seeds (a single
run's bar is hatched and its error bar is its 95% CI). ``quality_vs_latency.png``: headline quality against
latency with the Pareto front; points carry their rank number (points that coincide share one label) and
the legend names every rank. ``retrieval_overhead.png``: the memory's share of time against N_m.
``ablations.png``: each ablation's Δ against its base with the paired 95% CI. ``learning_curves.png``:
validation CE micro-F1 and BLEU-4 against steps and against wall time. ``ce_per_observation.png``: F1 per
model and observation as a heatmap. A plot without data says so instead of being left out.

Every text that comes from a record (model, row label, metric key, observation) goes through :func:`t`,
which escapes ``$`` so that matplotlib's mathtext shows a model called ``a$x$`` as written instead of
failing on it; TeX is off. Every model keeps one colour across plots (its rank).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

from rrgbench.report.board import CURVE_METRICS, Board, Column

PLOT_METRICS = ("bleu_1", "bleu_4", "meteor", "rouge_l", "cider", "ce_f1_micro", "ce_f1_macro", "radgraph_f1")
PLOTS = ("metrics.png", "quality_vs_latency.png", "retrieval_overhead.png", "ablations.png", "learning_curves.png",
         "ce_per_observation.png")
PLAIN_TEXT = {"text.usetex": False}


def t(text: object) -> str:
    """Text from a record as a matplotlib label: ``$`` escaped (no mathtext)."""
    return str(text).replace("$", r"\$")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed) with the seaborn theme."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt


def _png(fig: Any, rect: tuple[float, float, float, float] | None = None) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout(rect=rect)
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


class EmptyPlot(bytes):
    """The PNG of a plot without data (written as a file, so every report has the same files; not shown)."""


def _empty_plot(title: str, message: str) -> bytes:
    fig, ax = _pyplot().subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11, color="0.35")
    return EmptyPlot(_png(fig))


def with_data(images: dict[str, bytes]) -> dict[str, bytes]:
    """The plots that show data (those a page embeds)."""
    return {name: data for name, data in images.items() if not isinstance(data, EmptyPlot)}


def colors(board: Board) -> dict[str, Any]:
    import seaborn as sns

    n = len(board.rows)
    return dict(zip(board.rows, sns.color_palette("tab10" if n <= 10 else "tab20" if n <= 20 else "husl", n),
                    strict=True))


def plotted_metrics(board: Board) -> list[Column]:
    """The sort metric, then the headline metrics with values (at most 8 panels)."""
    chosen = [board.sort] if board.sort.getter is None else []
    chosen += [c for c in board.metrics if c.key in PLOT_METRICS and c not in chosen and board.has_values(c)]
    return chosen[:8]


def plot_metrics(board: Board) -> bytes:
    columns = plotted_metrics(board)
    if not columns:
        return _empty_plot("Metrics", "no metric has a value in these runs")
    plt = _pyplot()
    n_cols = min(4, len(columns))
    n_rows = math.ceil(len(columns) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, (0.3 * len(board.rows) + 1.2) * n_rows),
                             squeeze=False)
    palette = colors(board)
    for ax, column in zip(axes.flat, columns, strict=False):
        cells = {r: board.cells[(r, column.key)] for r in board.rows}
        order = sorted((r for r in board.rows if cells[r].mean is not None),
                       key=lambda r: -cells[r].mean if column.higher_is_better else cells[r].mean)  # type: ignore
        order += [r for r in board.rows if cells[r].mean is None]
        for y, label in enumerate(order):
            cell = cells[label]
            if cell.mean is None:
                ax.text(0, y, " n/a", va="center", fontsize=8, color="0.4")
                continue
            err = [[max(cell.mean - cell.low, 0.0)], [max(cell.high - cell.mean, 0.0)]] \
                if cell.low is not None and cell.high is not None else None
            ax.barh([y], [cell.mean], xerr=err, color=palette[label], capsize=2, error_kw={"elinewidth": 0.8},
                    hatch="//" if cell.runs == 1 else None, edgecolor="white")
        ax.set_yticks(range(len(order)), [t(label) for label in order], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(t(column.title), fontsize=10)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.suptitle(f"{board.dataset}: metrics, best first (error bars: sd over seeds; hatched: one run, "
                 "error bar = its 95% CI)", fontsize=10)
    return _png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower x, higher y), by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def label_groups(points: Sequence[tuple[float, float]], log_x: bool, near: float = 0.035) -> list[list[int]]:
    """Points close together (within ``near`` of the axes' ranges) grouped, so each group gets one label."""
    xs = [math.log10(p[0]) if log_x and p[0] > 0 else p[0] for p in points]
    ys = [p[1] for p in points]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    groups: list[list[int]] = []
    for i in range(len(points)):
        for group in groups:
            j = group[0]
            if abs(xs[i] - xs[j]) / span_x < near and abs(ys[i] - ys[j]) / span_y < near:
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def plot_quality_latency(board: Board) -> bytes:
    metrics = [board.column(k) for k in board.tested] or plotted_metrics(board)[:1]
    panels = []
    for metric in metrics:
        points = [(board.cells[(r, "latency_ms")].mean, board.cells[(r, metric.key)].mean, r) for r in board.rows]
        found = [(x, y, r) for x, y, r in points if x is not None and y is not None]
        if found:
            panels.append((metric, found))
    if not panels:
        return _empty_plot("Quality vs latency", "no run has both a quality metric and a latency measurement")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels) + 3.2, 5), squeeze=False)
    palette, rank = colors(board), {label: i for i, label in enumerate(board.rows, 1)}
    for ax, (metric, points) in zip(axes[0], panels, strict=True):
        for x, y, label in points:
            ax.scatter([x], [y], color=palette[label], marker=MARKERS[(rank[label] - 1) % len(MARKERS)], s=45,
                       zorder=3, label=t(f"{rank[label]}. {label}"))
        xy = [(x, y if metric.higher_is_better else -y) for x, y, _ in points]
        front = sorted(pareto_front(xy), key=lambda i: points[i][0])
        ax.step([points[i][0] for i in front], [points[i][1] for i in front], where="post", color="0.3",
                linestyle="--", linewidth=1, zorder=2, label="Pareto front")
        log_x = max(p[0] for p in points) > 20 * min(p[0] for p in points)
        if log_x:
            ax.set_xscale("log")
        for group in label_groups([(x, y) for x, y, _ in points], log_x):
            x, y, _ = points[group[0]]
            ax.annotate(",".join(str(rank[points[i][2]]) for i in sorted(group, key=lambda i: rank[points[i][2]])),
                        (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel("latency per study at batch 1 (ms) ↓")
        ax.set_ylabel(t(metric.title))
        ax.set_title(t(f"{board.dataset}: {metric.key} vs latency"), fontsize=10)
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7, title="rank. model", title_fontsize=8)
    return _png(fig, rect=(0, 0, 1 - 3.0 / (6.2 * len(panels) + 3.2), 1))


def plot_retrieval(board: Board) -> bytes:
    points = []
    for label in board.rows:
        for record in board.runs[label]:
            retrieval = record.efficiency.retrieval
            if retrieval is not None and isinstance(retrieval.memory_size, int) \
                    and isinstance(retrieval.share_of_forward, (int, float)):
                generate = retrieval.share_of_generate
                points.append((board.models[label], retrieval.memory_size, 100 * retrieval.share_of_forward,
                               100 * generate if generate is not None else None))
    if not points:
        return _empty_plot("Retrieval overhead vs memory size", "no run with a memory component and a memory size")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    names = sorted({p[0] for p in points})
    import seaborn as sns

    palette = dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names)), strict=True))
    for name in names:
        mine = sorted((p for p in points if p[0] == name), key=lambda p: p[1])
        ax.plot([p[1] for p in mine], [p[2] for p in mine], color=palette[name], marker="o", label=t(name),
                linewidth=0.8 if len({p[1] for p in mine}) > 1 else 0)
        with_generate = [p for p in mine if p[3] is not None]
        ax.scatter([p[1] for p in with_generate], [p[3] for p in with_generate], color=palette[name], marker="x")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("memory size N_m (slots)")
    ax.set_ylabel("memory share of time (%) ↓")
    ax.set_title(t(f"{board.dataset}: retrieval overhead (o: forward pass, x: generation at batch 1)"), fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def plot_ablations(board: Board) -> bytes:
    if not board.families or not board.tested:
        return _empty_plot("Ablations", "no ablation (record.ablation_of) next to its base in these runs")
    plt = _pyplot()
    columns = [board.column(k) for k in board.tested]
    pairs = [(base, variant) for base, variants in board.families.items() for variant in variants]
    fig, axes = plt.subplots(1, len(columns), figsize=(5.5 * len(columns), 0.45 * len(pairs) + 1.6), squeeze=False)
    palette = colors(board)
    for ax, column in zip(axes[0], columns, strict=True):
        for y, (base, variant) in enumerate(pairs):
            a, b = board.cells[(variant, column.key)], board.cells[(base, column.key)]
            if a.mean is None or b.mean is None:
                ax.text(0, y, " n/a", va="center", fontsize=8, color="0.4")
                continue
            delta = a.mean - b.mean
            test = board.tests.ablations.get((base, variant, column.key)) if board.tests else None
            err = None
            if test is not None and test.ci95 is not None and test.delta is not None:
                shift = delta - test.delta  # centre the paired CI of the pooled Δ on the shown Δ of the means
                err = [[max(delta - (test.ci95[0] + shift), 0.0)], [max(test.ci95[1] + shift - delta, 0.0)]]
            ax.barh([y], [delta], xerr=err, color=palette[variant], capsize=2, error_kw={"elinewidth": 0.8})
            if test is not None and test.significant:  # the star just beyond the error bar
                end = delta + (err[1][0] if err else 0.0) if delta >= 0 else delta - (err[0][0] if err else 0.0)
                ax.text(end, y, " *" if delta >= 0 else "* ", va="center", ha="left" if delta >= 0 else "right")
        ax.axvline(0, color="0.2", linewidth=0.8)
        ax.set_yticks(range(len(pairs)), [t(f"{v} − {b}") for b, v in pairs], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(t(f"Δ {column.key} (variant − base)"))
    fig.suptitle(f"{board.dataset}: ablations (error bars: paired 95% CI; *: significant after Holm)", fontsize=10)
    return _png(fig)


def plot_curves(board: Board) -> bytes:
    metrics = [m for m in CURVE_METRICS if any(m in c for c in board.curves.values())]
    if not metrics:
        return _empty_plot("Learning curves", "no validation history (record.validation.history) in these runs")
    plt = _pyplot()
    fig, axes = plt.subplots(len(metrics), 2, figsize=(13, 3.6 * len(metrics) + 0.8), squeeze=False)
    palette = colors(board)
    for row, metric in enumerate(metrics):
        for col, (xlabel, pick) in enumerate((("training steps", lambda c: c.steps),
                                              ("training wall time (s)", lambda c: c.seconds))):
            ax = axes[row][col]
            _draw_curves(ax, board, metric, pick, palette)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"validation {metric}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7)
    fig.suptitle(f"{board.dataset}: learning curves (mean over seeds, band: ± sd)", fontsize=10)
    return _png(fig, rect=(0, 0, 0.8, 0.97))


def _draw_curves(ax: Any, board: Board, metric: str, pick: Callable[[Any], list[Any]], palette: dict[str, Any]) -> None:
    for label in board.rows:
        found = board.curves.get(label, {}).get(metric)
        if found is None:
            continue
        points = [(x, m, s) for x, m, s in zip(pick(found), found.mean, found.sd, strict=True) if x is not None]
        if not points:
            continue
        xs, means = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, means, color=palette[label], marker="o", markersize=3, linewidth=1.2, label=t(label))
        if all(p[2] is not None for p in points):
            ax.fill_between(xs, [m - s for _, m, s in points], [m + s for _, m, s in points], color=palette[label],
                            alpha=0.15, linewidth=0)


def plot_observations(board: Board) -> bytes:
    if not board.observations:
        return _empty_plot("CE F1 per observation", "no per-observation table (record.tables) in these runs")
    import numpy as np
    import seaborn as sns

    plt = _pyplot()
    grid = np.array([[board.per_observation[r].get(o, (np.nan,))[0] for o in board.observations] for r in board.rows],
                    dtype=float)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.62 * len(board.observations) + 3.5), 0.34 * len(board.rows) + 2.4))
    sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", annot_kws={"fontsize": 6},
                xticklabels=[t(o) for o in board.observations], yticklabels=[t(r) for r in board.rows],
                cbar_kws={"label": "F1"})
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(False)
    ax.set_title(f"{board.dataset}: CE F1 per observation (mean over seeds)", fontsize=10)
    return _png(fig)


def plots(board: Board) -> dict[str, bytes]:
    """Every plot of the report, as PNG bytes, by file name."""
    import matplotlib

    _pyplot()  # the theme first: rc_context restores everything set inside it
    makers = {"metrics.png": plot_metrics, "quality_vs_latency.png": plot_quality_latency,
              "retrieval_overhead.png": plot_retrieval, "ablations.png": plot_ablations,
              "learning_curves.png": plot_curves, "ce_per_observation.png": plot_observations}
    with matplotlib.rc_context(PLAIN_TEXT):
        return {name: makers[name](board) for name in PLOTS}
