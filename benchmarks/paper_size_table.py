"""The Markdown table of ``test_bench_paper_size.py``: one row per recipe, from pytest-benchmark's JSON.

    python -m pytest benchmarks/test_bench_paper_size.py --benchmark-only --benchmark-json paper.json
    python benchmarks/paper_size_table.py paper.json --out benchmarks/results/paper_size.md

Every figure is a pytest-benchmark median (seconds) or derived from one: ``image side`` is the median of
the timed calls' ``prepare`` seconds (``extra_info['prepare_s']``), ``decode steps`` the decode's median
minus it; the speed-up is official R2Gen's 50.2 s (beam-3 decode of 16 studies, the figure quoted in
issue 18) over the decode's median, and ``limit here`` is 50.2 s over the image side alone (what a decode
with free decoder steps would reach on this machine); ``of limit`` is the speed-up over that limit.
``training TFLOP/s`` is the step's counted floating-point operations (``extra_info['train_flops']``) over its
median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

OFFICIAL_R2GEN_DECODE_S = 50.2  # official R2Gen, beam-3 decode of 16 studies (issue 18)


def _rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per recipe: the train and decode entries (median seconds and extra_info)."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in data.get("benchmarks", []):
        info = entry.get("extra_info", {})
        if "recipe" not in info or "workload" not in info:
            continue
        row = rows.setdefault(info["recipe"], {"info": info})
        row[info["workload"]] = {"median": entry["stats"]["median"], "info": info}
    return rows


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def table_row(recipe: str, row: dict[str, Any]) -> str:
    """One Markdown row: settings, training step, decode and its split, the speed-ups."""
    info = row["info"]
    train = row.get("train", {}).get("median")
    decode = row.get("decode", {}).get("median")
    prepare = row.get("decode", {}).get("info", {}).get("prepare_s") or []
    image = statistics.median(prepare) if prepare else None
    steps = decode - image if decode is not None and image is not None else None
    flops = row.get("train", {}).get("info", {}).get("train_flops")
    tflops = f"{flops / train / 1e12:.3g}" if flops and train else "n/a"
    speedup = OFFICIAL_R2GEN_DECODE_S / decode if decode else None
    limit = OFFICIAL_R2GEN_DECODE_S / image if image else None
    share = f"{speedup / limit:.0%}" if speedup and limit else "n/a"
    memory = info.get("memory_slots") or "-"
    cells = [recipe, str(info.get("backbone")), str(memory), f"{info.get('parameters', 0) / 1e6:.1f} M",
             _seconds(train) if train is not None else "n/a (nothing trainable)", tflops, _seconds(decode),
             _seconds(image), _seconds(steps), _ratio(speedup), _ratio(limit), share]
    return "| " + " | ".join(cells) + " |"


def _span(values: list[float]) -> str:
    return "n/a" if not values else f"{min(values):.2f}-{max(values):.2f}"


def markdown_table(data: dict[str, Any]) -> str:
    """The whole Markdown file: what was run, on what, and the table."""
    rows = _rows(data)
    infos = [e.get("extra_info", {}) for e in data.get("benchmarks", [])]
    threads = sorted({i["threads"] for i in infos if "threads" in i})
    loads = [i[key] for i in infos for key in ("loadavg_1min_before", "loadavg_1min_after")
             if i.get(key) is not None]
    devices = sorted({i["device"] for i in infos if "device" in i})
    machine = data.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw") or machine.get("processor") or "unknown CPU"
    gpus = sorted({i["device_name"] for i in infos if i.get("device_name")})
    autocasts = sorted({i["autocast"] for i in infos if i.get("autocast")})
    first = next(iter(rows.values()), {"info": {}})["info"]
    lines = [
        "# Paper-size cost of every recipe",
        "",
        "Made by `python benchmarks/paper_size_table.py` from `python -m pytest benchmarks/test_bench_paper_size.py"
        " --benchmark-only --benchmark-json FILE` (pytest-benchmark medians; the workloads are described in that"
        " module's docstring).",
        "",
        f"Machine: {cpu}{''.join(f'; {gpu}' for gpu in gpus)}; device {', '.join(devices) or 'n/a'}"
        f"{''.join(f' ({a} autocast)' for a in autocasts)}; torch threads {', '.join(map(str, threads))};"
        f" 1-minute load average {_span(loads)} around the measurements; {data.get('datetime', 'date n/a')}.",
        f"Workload: batch {first.get('batch')}, inputs {first.get('size')}, d_model {first.get('d_model')},"
        f" vocabulary {first.get('vocab')}, beam {first.get('beam')}, {first.get('max_len')} decoding steps"
        " (eos masked), random weights.",
        "",
        "| recipe | backbone | memory slots | parameters | training step (s) | training TFLOP/s |"
        " beam-3 decode of 16 studies (s) | image side (s) | decode steps (s) | speed-up over official R2Gen (50.2 s) |"
        " limit here | of limit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [table_row(recipe, rows[recipe]) for recipe in sorted(rows)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="pytest-benchmark JSON of test_bench_paper_size.py")
    parser.add_argument("--out", help="Markdown file to write (default: print)")
    args = parser.parse_args(argv)
    text = markdown_table(json.loads(Path(args.json).read_text(encoding="utf-8")))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
