#!/usr/bin/env python3
"""Plots and tabulates reducer-bench results (the JSONL that scripts/bench-matrix.sh writes).

Runs are grouped by label and by their parameters into three series, each point reduced to
min/median/max over its runs:

  clients  HandleAction, closed loop, uniform over 10,000 keys, against callers
  keys     HandleAction, closed loop, 32 callers, against keys (a hot-key run counts as 1 key)
  hot      HandleAction, closed loop, one hot key, against callers

Writes into --out (docs/bench): throughput-vs-clients.png, p99-vs-clients.png,
throughput-vs-keys.png, p99-vs-keys.png, gave-up-hot-key.png, and before-after.png when the
file carries two or more labels (the first label against the last). Prints a markdown table
with the pg-limit measured beside each run. Without matplotlib it prints the table only.

  .tools/venv/bin/python scripts/plot-bench.py docs/bench/results.jsonl [--out docs/bench]
"""

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

SERIES = {
    "clients": "uniform over 10,000 keys, by callers",
    "keys": "32 callers, by keys",
    "hot": "one hot key, by callers",
}


def load(path):
    """Closed-loop HandleAction records that ran to the end, in file order."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            sys.exit(f"{path}:{number}: not JSON: {error}")
        params = record.get("params", {})
        if record.get("interrupted") or params.get("mode") != "handle" or params.get("rate") is not None:
            continue
        records.append(record)
    return records


def series_points(record):
    """The (series, x) points a record belongs to; one run can serve two series."""
    params = record["params"]
    dist, clients, keys = params["dist"], params["clients"], params["keys"]
    points = []
    if dist == "uniform" and keys == 10000:
        points.append(("clients", clients))
    if dist == "hot":
        points.append(("hot", clients))
    if clients == 32 and dist in ("uniform", "hot"):
        points.append(("keys", 1 if dist == "hot" else keys))
    return points


def spread(values):
    """(min, median, max) of the values that are present, or None."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return min(present), statistics.median(present), max(present)


def summarise(records):
    """{label: {series: {x: {metric: (min, median, max), "runs": n}}}}, labels in file order."""
    grouped = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for record in records:
        for series, x in series_points(record):
            grouped[record.get("label", "")][series][x].append(record)
    metrics = {
        "throughput": lambda r: r["throughput"],
        "committed": lambda r: r["committed_per_s"],
        "p99": lambda r: r["latency_ms"]["p99"],
        "gave_up": lambda r: r["gave_up_share"] * 100,
        "pg_limit": lambda r: r.get("pg_limit_tps"),
        "ratio": lambda r: r.get("throughput_ratio"),
        "committed_ratio": lambda r: r.get("committed_ratio"),
    }
    summary = {}
    for label, by_series in grouped.items():
        summary[label] = {}
        for series, by_x in by_series.items():
            summary[label][series] = {}
            for x, runs in sorted(by_x.items()):
                point = {name: spread([get(r) for r in runs]) for name, get in metrics.items()}
                point["runs"] = len(runs)
                summary[label][series][x] = point
    return summary


def fmt(triple, digits=1):
    if triple is None:
        return "-"
    low, mid, high = triple
    return f"{low:.{digits}f} / **{mid:.{digits}f}** / {high:.{digits}f}"


def table(summary):
    lines = [
        "min / **median** / max over runs; pg-limit is this machine's PostgreSQL limit for one action",
        "per transaction, measured right after each run with the same clients (at most 32) and keys.",
        "",
        "| label | series | x | runs | actions/s | committed/s | p99 ms | GAVE_UP % | pg-limit tps | ratio |",
        "|---|---|---:|---:|---|---|---|---|---|---|",
    ]
    for label, by_series in summary.items():
        for series in SERIES:
            for x, p in by_series.get(series, {}).items():
                ratio = "-" if p["ratio"] is None else f"{p['ratio'][1]:.2f}"
                lines.append(
                    f"| {label} | {series} | {x} | {p['runs']} | {fmt(p['throughput'])} | {fmt(p['committed'])} "
                    f"| {fmt(p['p99'])} | {fmt(p['gave_up'])} | {fmt(p['pg_limit'])} | {ratio} |"
                )
    return "\n".join(lines)


def comparison(summary, before, after):
    lines = [
        f"| series | x | actions/s {before} | actions/s {after} | change | p99 ms {before} | p99 ms {after} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for series in SERIES:
        old, new = summary[before].get(series, {}), summary[after].get(series, {})
        for x in sorted(set(old) & set(new)):
            t0, t1 = old[x]["throughput"][1], new[x]["throughput"][1]
            change = f"{(t1 / t0 - 1) * 100:+.0f}%" if t0 else "-"
            lines.append(
                f"| {series} | {x} | {t0:.1f} | {t1:.1f} | {change} | {old[x]['p99'][1]:.1f} | {new[x]['p99'][1]:.1f} |"
            )
    return "\n".join(lines)


def plot(summary, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def line_chart(series, metric, ylabel, filename, log_x=False, with_limit=False):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        drawn = False
        ticks = set()
        for label, by_series in summary.items():
            points = by_series.get(series, {})
            xs = [x for x, p in points.items() if p[metric] is not None]
            if not xs:
                continue
            drawn = True
            ticks.update(xs)
            mids = [points[x][metric][1] for x in xs]
            below = [points[x][metric][1] - points[x][metric][0] for x in xs]
            above = [points[x][metric][2] - points[x][metric][1] for x in xs]
            bars = ax.errorbar(xs, mids, yerr=[below, above], marker="o", capsize=3, label=label or "(no label)")
            if with_limit:
                limit_xs = [x for x in xs if points[x]["pg_limit"] is not None]
                if limit_xs:
                    ax.plot(
                        limit_xs,
                        [points[x]["pg_limit"][1] for x in limit_xs],
                        linestyle="--",
                        marker=".",
                        color=bars[0].get_color(),
                        alpha=0.7,
                        label=f"pg-limit ({label})" if label else "pg-limit",
                    )
        if not drawn:
            plt.close(fig)
            return None
        ax.set_xscale("log", base=10 if log_x else 2)
        ax.set_xticks(sorted(ticks), [str(x) for x in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel("keys" if series == "keys" else "concurrent callers")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel}, {SERIES[series]} (median, min-max bars)", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    written = [
        line_chart("clients", "throughput", "actions/s", "throughput-vs-clients.png", with_limit=True),
        line_chart("clients", "p99", "p99 latency ms", "p99-vs-clients.png"),
        line_chart("keys", "throughput", "actions/s", "throughput-vs-keys.png", log_x=True, with_limit=True),
        line_chart("keys", "p99", "p99 latency ms", "p99-vs-keys.png", log_x=True),
        line_chart("hot", "gave_up", "GAVE_UP share %", "gave-up-hot-key.png"),
    ]
    labels = list(summary)
    if len(labels) >= 2:
        written.append(before_after(plt, summary, labels[0], labels[-1], out))
    return [path for path in written if path is not None]


def before_after(plt, summary, before, after, out):
    """Grouped bars of median throughput and p99 for every point both labels measured."""
    keys = []
    for series in SERIES:
        common = set(summary[before].get(series, {})) & set(summary[after].get(series, {}))
        keys += [(series, x) for x in sorted(common)]
    if not keys:
        return None
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 0.6 * len(keys)), 6.5), sharex=True)
    positions = range(len(keys))
    for ax, metric, ylabel in ((axes[0], "throughput", "actions/s"), (axes[1], "p99", "p99 ms")):
        for offset, label in ((-0.2, before), (0.2, after)):
            values = [summary[label][s][x][metric][1] for s, x in keys]
            ax.bar([p + offset for p in positions], values, width=0.4, label=label)
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_xticks(list(positions))
    axes[1].set_xticklabels([f"{s}\n{x}" for s, x in keys], fontsize=7)
    axes[0].set_title(f"{before} vs {after} (medians)", fontsize=10)
    fig.tight_layout()
    path = out / "before-after.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="JSONL written by reducer-bench --json")
    parser.add_argument("--out", default="docs/bench", help="folder for the PNGs (docs/bench)")
    args = parser.parse_args()
    summary = summarise(load(args.results))
    if not summary:
        sys.exit(f"{args.results}: no closed-loop HandleAction runs to plot")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        written = plot(summary, out)
    except ImportError:
        written = []
        print("matplotlib is not installed here (scripts/tools.sh puts it in .tools/venv): no PNGs\n", file=sys.stderr)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    print(table(summary))
    labels = list(summary)
    if len(labels) >= 2:
        print()
        print(comparison(summary, labels[0], labels[-1]))


if __name__ == "__main__":
    main()
