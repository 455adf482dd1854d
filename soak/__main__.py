"""``python -m soak`` (``make soak SEEDS=N MINUTES=M``): run seeds, check, report.

Exit status 1 when any run failed; each failure prints its seed, the minimal history around the
failing key and the command that replays the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from soak.faults import ALL_FAULTS, parse_faults
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__)
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds to run")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, help="run this one seed (a replay)")
    parser.add_argument("--minutes", type=float, default=2.0, help="workload time per seed")
    parser.add_argument("--seconds", type=float, help="workload time per seed, in seconds")
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--devices", type=int, default=3, help="devices per user")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--retained-bundles", type=int, default=5)
    parser.add_argument(
        "--faults", default="all", help=f"all, none or a list of: {','.join(ALL_FAULTS)}"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".soak"))
    args = parser.parse_args(argv)
    seeds = (
        [args.seed]
        if args.seed is not None
        else list(range(args.first_seed, args.first_seed + args.seeds))
    )
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    totals: Counter[str] = Counter()
    failed: list[RunResult] = []
    started = time.monotonic()
    for seed in seeds:
        config = RunConfig(
            seed=seed, seconds=seconds, users=args.users, devices=args.devices,
            servers=args.servers, retained_bundles=args.retained_bundles,
            faults=parse_faults(args.faults),
        )  # fmt: skip
        result = run_seed(config, args.work_dir.absolute())
        print(summary(result), flush=True)
        totals.update(result.faults)
        totals.update(result.report.stats)
        totals["failures"] += len(result.report.failures)
        if not result.ok:
            failed.append(result)
            print(explain(result), flush=True)
    print(
        f"\n{len(seeds)} runs in {time.monotonic() - started:.0f} s, {len(failed)} failed; totals: "
        + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
