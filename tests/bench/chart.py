#!/usr/bin/env python3
"""Chart of latency distributions from the benchmark JSON files: docs/benchmarks-latency.png.

    sudo python3 tests/bench/lifecycle.py --iterations 30 --json /tmp/lifecycle.json
    sudo python3 tests/bench/commands.py --iterations 40 --json /tmp/commands.json
    python3 -m venv /tmp/chart-venv && /tmp/chart-venv/bin/pip install matplotlib
    /tmp/chart-venv/bin/python tests/bench/chart.py /tmp/lifecycle.json /tmp/commands.json \\
        [-o docs/benchmarks-latency.png] [--title TEXT]

matplotlib is NOT a dependency of ocirun, nor of its tests: install it into a throwaway venv
outside the repository (as above) and run this script with that venv's python. Nothing else in
the repository imports this file.

Input: any number of JSON files in the shape tests/bench/lifecycle.py and commands.py write with
--json ({"floor": [ns...], "runtimes": {NAME: {"path": ..., MEASURE: [ns...]}}}). A measure that
appears in more than one file (state, kill, delete are in both) has its samples pooled; so do
the floor samples (`python -I -S -c pass` with ocirun's interpreter).

Output: one PNG with two panels sharing the layout, one box per command per runtime (box:
p25-p75, line: median, whiskers: p5-p95, dots beyond), the median written above each box:
  left   end-to-end commands: run, lifecycle (create + start + wait + delete)
  right  the CPython floor as its own box, then the short commands: state, ps (--format json),
         kill, delete (ps-table too with --ps-table: it runs ps(1), so it has no floor target and
         would squash the scale), with a band from the floor's median to floor + 2 ms (issue
         7's target for these).
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
except ImportError:
    sys.exit("chart.py needs matplotlib, which is not an ocirun dependency: install it into a throwaway venv "
             "outside the repo (python3 -m venv /tmp/chart-venv && /tmp/chart-venv/bin/pip install matplotlib) "
             "and run this script with /tmp/chart-venv/bin/python")

REPO = Path(__file__).resolve().parents[2]
LONG = ["run", "lifecycle"]
SHORT = ["state", "ps", "kill", "delete"]
COLORS = {"ocirun": "#1f77b4", "runc": "#ff7f0e", "crun": "#2ca02c", "floor": "#7f7f7f"}
ORDER = ["ocirun", "runc", "crun"]
LABELS = {"lifecycle": "lifecycle: create, start,\nwait, delete", "ps": "ps --format json", "ps-table": "ps (table)"}


def load(files):
    samples, floor, meta = {}, [], []
    for fn in files:
        with open(fn) as f:
            d = json.load(f)
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[d.get("unit", "ns")]
        floor += [x * scale for x in d.get("floor", [])]
        meta.append(f"{Path(fn).name}: {d.get('iterations', '?')} iterations")
        for rt, ms in d["runtimes"].items():
            for m, xs in ms.items():
                if isinstance(xs, list):
                    samples.setdefault(rt, {}).setdefault(m, []).extend(x * scale for x in xs)
    return samples, floor, meta


def draw(ax, measures, samples, floor, with_floor):
    runtimes = [r for r in ORDER if r in samples] + sorted(r for r in samples if r not in ORDER)
    measures = [m for m in measures if any(m in samples[r] for r in runtimes)]
    groups = [(m, [r for r in runtimes if samples[r].get(m)]) for m in measures]
    if with_floor and floor:
        groups.insert(0, ("floor:\npython -I -S\n-c pass", ["floor"]))
    data, pos, colors, ticks, labels = [], [], [], [], []
    x = 0.0
    for m, rts in groups:
        start = x
        for r in rts:
            data.append(floor if r == "floor" else samples[r][m])
            pos.append(x)
            colors.append(COLORS.get(r, "#9467bd"))
            x += 1
        ticks.append((start + x - 1) / 2)
        labels.append(LABELS.get(m, m))
        x += 0.8
    if not data:
        ax.set_visible(False)
        return
    bp = ax.boxplot(data, positions=pos, widths=0.7, whis=(5, 95), patch_artist=True, showfliers=True,
                    flierprops={"markersize": 2, "alpha": 0.4}, medianprops={"color": "black"})
    for patch, c in zip(bp["boxes"], colors):
        patch.set_facecolor(c)
        patch.set_alpha(0.75)
    for p, xs in zip(pos, data):
        ax.annotate(f"{statistics.median(xs):.1f}", (p, statistics.median(xs)), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=7)
    if with_floor and floor:
        f = statistics.median(floor)
        ax.axhspan(f, f + 2, color="#2ca02c", alpha=0.12, zorder=0)
        ax.axhline(f + 2, color="#2ca02c", lw=0.8, ls="--", zorder=0)
        ax.text(ax.get_xlim()[1], f + 2, "floor + 2 ms: target ", fontsize=7, color="#2ca02c", va="bottom",
                ha="right")
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_ylabel("wall time per command, ms")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", help="JSON files written by lifecycle.py/commands.py --json")
    ap.add_argument("-o", "--output", default=str(REPO / "docs/benchmarks-latency.png"))
    ap.add_argument("--ps-table", action="store_true", help="also draw `ps` (table), which runs ps(1)")
    ap.add_argument("--title", default="ocirun latency distributions (box p25-p75, whiskers p5-p95, median in ms)")
    a = ap.parse_args()
    samples, floor, meta = load(a.files)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    draw(left, LONG, samples, floor, False)
    left.set_title("end to end (/bin/true)", fontsize=10)
    draw(right, SHORT + (["ps-table"] if a.ps_table else []), samples, floor, True)
    right.set_title("short commands, and CPython's start-up floor", fontsize=10)
    runtimes = [r for r in ORDER if r in samples] + sorted(r for r in samples if r not in ORDER)
    handles = [Patch(facecolor=COLORS.get(r, "#9467bd"), alpha=0.75, label=r) for r in runtimes]
    if floor:
        handles.append(Patch(facecolor=COLORS["floor"], alpha=0.75, label="floor"))
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=9)
    fig.suptitle(a.title, fontsize=11, x=0.01, ha="left")
    fig.text(0.01, 0.01, "; ".join(meta), fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    fig.savefig(a.output, dpi=110)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
