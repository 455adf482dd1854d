"""One seed's run as the report prints it; a module of its own so worker processes import it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from soak.run import RunConfig, RunResult, run_seed

MAX_EXPLAINED = 5


def summary(result: RunResult) -> str:
    stats = result.report.stats
    faults = ", ".join(f"{k} {v}" for k, v in sorted(result.faults.items())) or "none"
    status = "ok" if result.ok else f"FAILED ({len(result.report.failures)} failures)"
    return (
        f"seed {result.config.seed}: {status}; {stats['committed writes checked']} committed of"
        f" {stats['writes']} writes checked, {stats['bundles audited']} bundles,"
        f" {stats['syncs ok']} syncs ({stats['background syncs']} by background sync,"
        f" {stats['sync errors']} failed and retried);"
        f" faults: {faults}"
    )


def explain(result: RunResult) -> str:
    kinds = Counter(failure.kind for failure in result.report.failures)
    lines = [f"seed {result.config.seed} failed: {dict(kinds)}"]
    for failure in result.report.failures[:MAX_EXPLAINED]:
        lines.append(result.report.explain(failure))
    if len(result.report.failures) > MAX_EXPLAINED:
        lines.append(f"... and {len(result.report.failures) - MAX_EXPLAINED} more")
    lines.append(f"replay: {result.config.replay_command()}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SeedOutcome:
    """What the report needs from one run, small enough to come back from a worker process."""

    seed: int
    ok: bool
    lines: str
    totals: Counter[str]


def run_one(config: RunConfig, work_dir: Path) -> SeedOutcome:
    result = run_seed(config, work_dir)
    lines = summary(result) if result.ok else summary(result) + "\n" + explain(result)
    totals: Counter[str] = Counter(result.faults)
    totals.update(result.report.stats)
    totals["failures"] += len(result.report.failures)
    return SeedOutcome(config.seed, result.ok, lines, totals)
