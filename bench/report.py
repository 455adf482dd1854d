"""Summaries of a run: medians over rounds, ratios, the issue's goals, a table and a chart.

A measured item holds, per target (A = this tree, B = `--compare REV`), one dict of figures per
round, and the raw baseline's rate per round. Everything shown is the median over rounds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Figures = dict[str, float]


@dataclass(frozen=True)
class Metric:
    """One figure of an item shown in the table: `key` in its Figures."""

    key: str
    label: str
    better: str  # "higher" or "lower"
    vs_baseline: bool = False  # compared with the item's baseline rate
    chart: bool = False  # drawn in the chart's A-vs-B panel


@dataclass
class Item:
    id: str
    title: str
    metrics: tuple[Metric, ...]
    baseline_name: str = ""
    samples: dict[str, list[Figures]] = field(default_factory=dict)
    baseline_samples: list[float] = field(default_factory=list)

    def median(self, target: str, key: str) -> float | None:
        values = [f[key] for f in self.samples.get(target, []) if f.get(key) is not None]
        return statistics.median(values) if values else None

    @property
    def baseline(self) -> float | None:
        return statistics.median(self.baseline_samples) if self.baseline_samples else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def summarise(items: list[Item], targets: list[str]) -> list[dict[str, Any]]:
    """The JSON form of every item: samples, medians and ratios."""
    out = []
    for item in items:
        metrics = []
        for metric in item.metrics:
            values = {t: item.median(t, metric.key) for t in targets}
            row: dict[str, Any] = {
                "key": metric.key,
                "label": metric.label,
                "better": metric.better,
                "values": values,
            }
            if len(targets) == 2:
                row["A/B"] = _ratio(values[targets[0]], values[targets[1]])
            if metric.vs_baseline and item.baseline is not None:
                row["baseline"] = item.baseline
                row["vs_baseline"] = {t: _ratio(values[t], item.baseline) for t in targets}
            metrics.append(row)
        out.append(
            {
                "id": item.id,
                "title": item.title,
                "baseline_name": item.baseline_name or None,
                "baseline": item.baseline,
                "baseline_samples": item.baseline_samples,
                "samples": item.samples,
                "metrics": metrics,
            }
        )
    return out


# ------------------------------------------------------------------------------ goals


# the targets for a server rate over its raw baseline (rows/s / COPY or raw read)
BASELINE_GOALS = {
    "push.commit.users.5000": 0.12,
    "push.commit.posts.5000": 0.12,
    "pull.large": 0.9,
}
NOISE = 0.05  # A/B within 5 % of 1 is drawn grey: not a difference on a shared machine


def _find(items: list[Item], item_id: str) -> Item | None:
    return next((item for item in items if item.id == item_id), None)


def pooled_cpu(items: list[Item], target: str) -> float | None:
    """Server CPU ms per 1-row bundle over every concurrency run of `target` (all levels)."""
    cpu = bundles = 0.0
    for item in items:
        if item.id.startswith("concurrency."):
            for figures in item.samples.get(target, []):
                if "server_cpu_ms_per_bundle" in figures:
                    cpu += figures["server_cpu_ms_per_bundle"] * figures["bundles"]
                    bundles += figures["bundles"]
    return cpu / bundles if bundles else None


def goals(items: list[Item], targets: list[str]) -> list[dict[str, Any]]:
    """The issue's performance targets, evaluated for A (the work tree)."""
    a = targets[0]
    b = targets[1] if len(targets) > 1 else None
    found: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, target: float, higher: bool) -> None:
        if value is not None:
            met = value >= target if higher else value <= target
            found.append({"goal": goal, "value": value, "target": target, "met": met})

    add("server CPU ms per 1-row bundle (all concurrency runs)", pooled_cpu(items, a), 2.5, False)
    for devices in (10, 50):
        item = _find(items, f"concurrency.{devices}")
        if item and b:
            ratio = _ratio(item.median(a, "bundles_per_s"), item.median(b, "bundles_per_s"))
            add(f"bundles/s at {devices} devices, A/B", ratio, 2.5, True)
    for item_id, target in BASELINE_GOALS.items():
        item = _find(items, item_id)
        if item:
            ratio = _ratio(item.median(a, "rows_per_s"), item.baseline)
            add(f"{item.title}: rows/s / {item.baseline_name}", ratio, target, True)
    return found


# ------------------------------------------------------------------------------ table


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2g}"


def table(items: list[Item], labels: dict[str, str]) -> str:
    targets = list(labels)
    header = ["workload", "figure", *(f"{k}: {labels[k]}" for k in targets)]
    if len(targets) == 2:
        header.append("A/B")
    header += ["raw", *(f"{k}/raw" for k in targets)]
    rows = [header]
    for item in items:
        for index, metric in enumerate(item.metrics):
            values = [item.median(t, metric.key) for t in targets]
            row = [item.title if index == 0 else "", metric.label, *map(_fmt, values)]
            if len(targets) == 2:
                row.append(_fmt(_ratio(values[0], values[1])))
            if metric.vs_baseline and item.baseline is not None:
                row.append(f"{_fmt(item.baseline)} {item.baseline_name}")
                row += [_fmt(_ratio(v, item.baseline)) for v in values]
            else:
                row += ["", *([""] * len(targets))]
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def goals_text(found: list[dict[str, Any]]) -> str:
    lines = ["goals (issue 10), for A:"]
    for goal in found:
        mark = "met" if goal["met"] else "NOT met"
        lines.append(
            f"  {goal['goal']}: {_fmt(goal['value'])} (target {_fmt(goal['target'])}) {mark}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------ chart


def chart(items: list[Item], labels: dict[str, str], path: Path, title: str) -> bool:
    """A PNG: each target against the raw baselines, and A against B (> 1: A is better).
    False when matplotlib (the `bench` extra) is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        return False
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    targets = list(labels)
    vs_raw: list[tuple[str, list[float | None], float | None]] = []
    vs_b: list[tuple[str, float]] = []
    for item in items:
        for metric in item.metrics:
            values = [item.median(t, metric.key) for t in targets]
            name = f"{item.title}: {metric.label}"
            if metric.vs_baseline and item.baseline:
                ratios = [_ratio(v, item.baseline) for v in values]
                vs_raw.append((name, ratios, BASELINE_GOALS.get(item.id)))
            if len(targets) == 2 and metric.chart:
                ratio = _ratio(values[0], values[1])
                if ratio:
                    vs_b.append((name, ratio if metric.better == "higher" else 1 / ratio))
    panels = 1 + (len(targets) == 2)
    height = max(4.0, 0.28 * max(len(vs_raw) * len(targets), len(vs_b)) + 1.5)
    figure, axes = plt.subplots(1, panels, figsize=(9 * panels, height), squeeze=False)
    left = axes[0][0]
    bar = 0.8 / len(targets)
    for n, target in enumerate(targets):
        positions = [i + n * bar for i in range(len(vs_raw))]
        widths = [(r[n] or 0.0) for _, r, _ in vs_raw]
        left.barh(positions, widths, height=bar, label=f"{target}: {labels[target]}")
        for y, width in zip(positions, widths, strict=True):
            if width:
                left.text(width, y, f" {width:.3g}", va="center", fontsize=6)
    for i, (_, _, goal) in enumerate(vs_raw):
        if goal:
            span = (i - bar / 2, i + bar * (len(targets) - 0.5))
            left.plot([goal, goal], span, color="black", linewidth=2)
            left.text(goal, span[0], f"goal {goal:g}", fontsize=6, va="bottom")
    shown = [r for _, ratios, _ in vs_raw for r in ratios if r]
    left.set_xscale("log")
    left.set_xlim(min([0.005, *shown]) * 0.8, max([2.0, *shown]) * 1.3)
    left.set_yticks([i + bar * (len(targets) - 1) / 2 for i in range(len(vs_raw))])
    left.set_yticklabels([name for name, _, _ in vs_raw], fontsize=7)
    left.invert_yaxis()
    left.axvline(1.0, color="grey", linewidth=0.8)
    left.xaxis.set_major_formatter(plain)
    left.set_title(
        "server rate / raw asyncpg baseline (same run, same PostgreSQL; commit ="
        " create+chunks+commit)",
        fontsize=9,
    )
    left.legend(fontsize=7)
    if len(targets) == 2:
        right = axes[0][1]
        colours = [
            "tab:grey" if abs(r - 1) <= NOISE else "tab:green" if r > 1 else "tab:red"
            for _, r in vs_b
        ]
        right.barh(range(len(vs_b)), [r for _, r in vs_b], color=colours)
        for y, (_, ratio) in enumerate(vs_b):
            right.text(ratio, y, f" {ratio:.2f}", va="center", fontsize=6)
        b_ratios = [r for _, r in vs_b]
        right.set_xscale("log")
        right.set_xlim(min([0.5, *b_ratios]) * 0.8, max([2.0, *b_ratios]) * 1.3)
        right.set_yticks(range(len(vs_b)))
        right.set_yticklabels([name for name, _ in vs_b], fontsize=7)
        right.invert_yaxis()
        right.axvline(1.0, color="grey", linewidth=0.8)
        right.xaxis.set_major_formatter(plain)
        right.xaxis.set_minor_formatter(plain)
        right.set_title(
            f"A vs B (> 1: A better; grey: within {NOISE:.0%})"
            f"  A = {labels['A']}, B = {labels['B']}",
            fontsize=9,
        )
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
