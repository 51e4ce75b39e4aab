#!/usr/bin/env python3
"""Plots the CSV written by `cargo bench --bench rollout_detector` into docs/img/.

    python3 benches/plot_rollout_detector.py [CSV_DIR] [OUT_DIR]

CSV_DIR defaults to $CARGO_TARGET_DIR/rollout_detector (or target/rollout_detector); it needs
detection.csv (a normal run) and sweep.csv (a `--sweep-significance` run). Needs matplotlib.
"""

import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_detection(rows, out):
    curves = defaultdict(list)
    for r in rows:
        curves[(float(r["rate"]), float(r["k"]))].append(
            (int(r["hours_after_onset"]) / 24.0, 100.0 * float(r["detected"]))
        )
    rates = sorted({rate for rate, _ in curves})
    fig, axes = plt.subplots(1, len(rates), figsize=(10, 4), sharey=True, squeeze=False)
    for ax, rate in zip(axes[0], rates):
        for (r, k), points in sorted(curves.items()):
            if r != rate:
                continue
            xs, ys = zip(*points)
            ax.step(xs, ys, where="post", label=f"{k:g}x legacy failure rate")
        for day in (1, 3):
            ax.axvline(day, color="grey", lw=0.6, ls=":")
        ax.set_title(f"{rate:g} commands/day, 10 % canary")
        ax.set_xlabel("days since onset")
        ax.set_xlim(0, 30)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("runs rolled back (%)")
    axes[0][0].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "rollout-detection.png"), dpi=90)


def plot_sweep(rows, out):
    by_rate = defaultdict(list)
    for r in rows:
        by_rate[float(r["rate"])].append(
            (
                float(r["significance"]),
                100.0 * int(r["false_rollbacks"]) / int(r["false_runs"]),
                100.0 * int(r["detected_1d"]) / int(r["detect_runs"]),
            )
        )
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for rate, points in sorted(by_rate.items()):
        points.sort()
        xs = [p[0] for p in points]
        left.plot(xs, [p[1] for p in points], marker="o", label=f"{rate:g}/day")
        right.plot(xs, [p[2] for p in points], marker="o", label=f"{rate:g}/day")
    left.axhline(1, color="red", lw=0.8, ls="--", label="goal ≤ 1 %")
    right.axhline(95, color="red", lw=0.8, ls="--", label="goal ≥ 95 % (500/day)")
    left.set_title("false rollbacks in 30 days (k = 1)")
    right.set_title("10x failure rate detected within 1 day")
    # Linear up to 1 %, logarithmic above: the goal and the 20-100 % failures both stay legible.
    left.set_yscale("symlog", linthresh=1.0)
    left.set_ylim(0, 100)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("FastChecks::significance")
        ax.set_ylabel("runs (%)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "rollout-significance.png"), dpi=90)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(target, "rollout_detector")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join("docs", "img")
    os.makedirs(out, exist_ok=True)
    plot_detection(read(os.path.join(src, "detection.csv")), out)
    plot_sweep(read(os.path.join(src, "sweep.csv")), out)


if __name__ == "__main__":
    main()
