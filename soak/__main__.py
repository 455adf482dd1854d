"""``python -m soak`` (``make soak SEEDS=N MINUTES=M``): run seeds, check, report.

Exit status 1 when any run failed; each failure prints its seed, the minimal history around the
failing key and the command that replays the run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from soak.faults import ALL_FAULTS, parse_faults
from soak.outcome import SeedOutcome, run_one
from soak.run import RunConfig


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
    parser.add_argument(
        "--jobs", type=int, default=1,
        help="seeds run at once, each with its own PostgreSQL, servers and devices",
    )  # fmt: skip
    args = parser.parse_args(argv)
    seeds = (
        [args.seed]
        if args.seed is not None
        else list(range(args.first_seed, args.first_seed + args.seeds))
    )
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    faults = parse_faults(args.faults)
    configs = [
        RunConfig(
            seed=seed,
            seconds=seconds,
            users=args.users,
            devices=args.devices,
            servers=args.servers,
            retained_bundles=args.retained_bundles,
            faults=faults,
        )
        for seed in seeds
    ]
    work_dir = args.work_dir.absolute()
    totals: Counter[str] = Counter()
    failed: list[int] = []
    started = time.monotonic()

    def report(outcome: SeedOutcome) -> None:
        print(outcome.lines, flush=True)
        totals.update(outcome.totals)
        if not outcome.ok:
            failed.append(outcome.seed)

    if args.jobs <= 1:
        for config in configs:
            report(run_one(config, work_dir))
    else:
        # spawn: each run starts from a clean interpreter (no inherited threads or sockets)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = [pool.submit(run_one, config, work_dir) for config in configs]
            for future in as_completed(futures):
                report(future.result())
    print(
        f"\n{len(seeds)} runs in {time.monotonic() - started:.0f} s, {len(failed)} failed"
        + (f" (seeds {', '.join(map(str, sorted(failed)))})" if failed else "")
        + "; totals: "
        + ", ".join(f"{k} {v}" for k, v in sorted(totals.items()))
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
