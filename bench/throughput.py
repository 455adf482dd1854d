"""Server throughput beside raw PostgreSQL, and beside an older revision, in one run.

    python -m bench [--quick] [--compare REV] [--workloads push,concurrency,pull,snapshot] ...

Every figure comes from real `oversync-server serve` processes over HTTP (bench/wire.py), on one
PostgreSQL (a throwaway local cluster unless --admin-dsn or TEST_DATABASE_URL), each server on a
fresh database of its own:

* push: rows/s of one device pushing 1/100/5,000-row bundles into business.users (no FK) and
  business.posts (deferred FK to users): create + chunks + commit ("commit"), and the same plus
  the committed-rows download ("full"); beside COPY (asyncpg copy_records_to_table, one
  transaction per bundle) into tables of the same shape (columns, PK, FK, no triggers);
* concurrency: 1/10/50 devices (distinct users, one connection each, asyncio) pushing 1-row
  bundles for a fixed time: bundles/s, p50/p99 latency, server CPU ms per bundle;
* pull: rows/s of pulling many one-row bundles and a few large ones from checkpoint 0, and the
  server's peak RSS meanwhile, beside a raw asyncpg read of the same rows as JSON objects from
  sync.bundle_rows (of A's database). Both clients end with the rows as Python objects: the pull
  client runs one json.loads over each response body, the raw read one json.loads over all the
  rows it fetched (bench/baselines.py), so client decoding weighs the same on both sides;
* snapshot: rows/s of creating and paging through a snapshot of a 100k-row scope, and the
  server's peak RSS meanwhile (VmHWM after a clear_refs reset), beside a raw to_jsonb read.

CPU is process CPU time (utime + stime of the server's whole process tree, the database's when
this run started it, and the load generator's own), never wall clock: the machine is shared.
The load generator is one lean process (bench/http1.py, about 0.4 ms CPU per 1-row bundle).
Extra `serve` flags go through `--server-arg=--workers=2` (A) and `--compare-server-arg` (B).
`--compare REV` runs REV's server (git archive, same virtualenv) beside this tree's, and every
measurement is interleaved, A, B, A, B, so machine noise hits both. The run writes
bench/results/<name>.json and .png and prints a table; medians over `--rounds`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import baselines, procstat, report, sdk, workloads
from bench.report import Item, Metric
from bench.revision import describe_work_tree, materialised
from bench.serving import (
    REPO_ROOT,
    SECRET,
    Cluster,
    Served,
    admin_dsn,
    cluster,
    database,
    server,
)
from bench.workloads import Figures, Target
from oversync_server.localpg import make_tempdir

__all__ = ["SECRET", "Served", "admin_dsn", "database", "main", "server"]

WORKLOADS = ("push", "concurrency", "pull", "snapshot", "sdk")
RESULTS = REPO_ROOT / "bench" / "results"


@dataclass(frozen=True)
class Scale:
    sizes: tuple[int, ...] = (1, 100, 5000)
    tables: tuple[str, ...] = ("users", "posts")
    modes: tuple[str, ...] = ("commit", "full")
    seconds: float = 3.0
    min_runs: int = 3
    devices: tuple[int, ...] = (1, 10, 50)
    concurrency_seconds: float = 10.0
    small_bundles: int = 500
    large_rows: int = 100_000
    large_bundles: int = 20
    page_rows: int = 1000
    rounds: int = 2


QUICK = Scale(
    modes=("commit",),
    seconds=1.0,
    min_runs=1,
    devices=(1, 10),
    concurrency_seconds=3.0,
    small_bundles=50,
    large_rows=10_000,
    large_bundles=2,
    rounds=1,
)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Scale]:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(__doc__ or "").split("\n")[0],
        epilog="Without --quick the defaults are the full run; --quick shrinks every default.",
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="a short run: smaller scopes, 1 round, short budgets")
    add("--compare", metavar="REV", help="also measure REV's server (e.g. HEAD~1 or a commit id)")
    add("--workloads", type=_words, help=f"comma separated, of {','.join(WORKLOADS)}")
    add("--sizes", type=_ints, help="rows per pushed bundle (default 1,100,5000)")
    add("--tables", type=_words, help="pushed tables, of users,posts (default both)")
    add("--push-modes", type=_words, help="commit (create+chunks+commit) and/or full (+download)")
    add("--seconds", type=float, help="time budget of one push/pull/snapshot measurement")
    add("--min-runs", type=int, help="at least this many bundles/pulls per measurement")
    add("--devices", type=_ints, help="concurrent device counts (default 1,10,50)")
    add("--concurrency-seconds", type=float, help="duration of one concurrency measurement")
    add("--small-bundles", type=int, help="one-row bundles of the many-small pull (default 500)")
    add("--large-rows", type=int, help="rows of the large pull and the snapshot (default 100000)")
    add("--large-bundles", type=int, help="bundles holding --large-rows (default 20)")
    add("--page-rows", type=int, help="snapshot page size (default 1000)")
    add("--rounds", type=int, help="interleaved rounds; figures are medians (default 2)")
    add("--server-arg", action="append", default=[], help="extra `serve` argument for A")
    add("--compare-server-arg", action="append", default=[], help="extra `serve` argument for B")
    add(
        "--admin-dsn",
        default=os.environ.get("TEST_DATABASE_URL", ""),
        help="PostgreSQL URL of a role with CREATEDB (default: a throwaway local cluster)",
    )
    add("--name", help="results file name (default: a timestamp, plus -vs-REV)")
    add("--output-dir", type=Path, default=RESULTS, help="where the JSON and PNG go")
    add("--no-chart", action="store_true", help="skip the PNG")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Scale()
    given = {
        "sizes": args.sizes,
        "tables": args.tables,
        "modes": args.push_modes,
        "seconds": args.seconds,
        "min_runs": args.min_runs,
        "devices": args.devices,
        "concurrency_seconds": args.concurrency_seconds,
        "small_bundles": args.small_bundles,
        "large_rows": args.large_rows,
        "large_bundles": args.large_bundles,
        "page_rows": args.page_rows,
        "rounds": args.rounds,
    }
    scale = Scale(**{**asdict(base), **{k: v for k, v in given.items() if v is not None}})
    args.workloads = args.workloads or WORKLOADS
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown or not set(scale.tables) <= {"users", "posts"}:
        parser.error(f"unknown workload or table: {sorted(unknown) or scale.tables}")
    if not set(scale.modes) <= {"commit", "full"}:
        parser.error("--push-modes takes commit and/or full")
    if scale.large_bundles < 1 or scale.large_rows % scale.large_bundles:
        parser.error("--large-rows must be a multiple of --large-bundles")
    return args, scale


# ------------------------------------------------------------------------------ the plan

Run = Callable[[Target, int], Figures]
Baseline = Callable[[int], float]

ROWS = Metric("rows_per_s", "rows/s", "higher", vs_baseline=True, chart=True)
SERVER_ROW = Metric("server_cpu_us_per_row", "server CPU µs/row", "lower", chart=True)
SERVER_BUNDLE = Metric("server_cpu_ms_per_bundle", "server CPU ms/bundle", "lower", chart=True)
DB_ROW = Metric("db_cpu_us_per_row", "PostgreSQL CPU µs/row", "lower")
DB_BUNDLE = Metric("db_cpu_ms_per_bundle", "PostgreSQL CPU ms/bundle", "lower")
CLIENT_BUNDLE = Metric("client_cpu_ms_per_bundle", "load generator CPU ms/bundle", "lower")
PEAK = Metric("peak_rss_mib", "server peak RSS MiB", "lower", chart=True)
GROWTH = Metric("peak_growth_mib", "server peak RSS growth MiB", "lower")


@dataclass
class Step:
    item: Item
    run: Run
    baseline: Baseline | None = None


def plan(args: argparse.Namespace, scale: Scale, raw_dsn: str, a_dsn: str) -> list[Step]:
    steps: list[Step] = []
    budget, runs = scale.seconds, scale.min_runs
    if "push" in args.workloads:
        for mode in scale.modes:
            for table in scale.tables:
                for size in scale.sizes:
                    what = "commit" if mode == "commit" else "full push"
                    item = Item(
                        f"push.{mode}.{table}.{size}",
                        f"push {table}, {size:,}-row bundles ({what})",
                        (ROWS, SERVER_ROW, DB_ROW),
                        "COPY",
                    )

                    def run(
                        target: Target, rnd: int, t: str = table, n: int = size, m: str = mode
                    ) -> Figures:
                        user = f"push-{m}-{t}-{n}-r{rnd}"
                        return workloads.push(target, t, n, budget, runs, user, full=m == "full")

                    def copy(rnd: int, t: str = table, n: int = size) -> float:
                        return asyncio.run(baselines.copy_rate(raw_dsn, t, n, budget, runs))

                    steps.append(Step(item, run, copy if mode == "commit" else None))
    if "concurrency" in args.workloads:
        for devices in scale.devices:
            item = Item(
                f"concurrency.{devices}",
                f"{devices} device{'s' * (devices > 1)}, 1-row bundles",
                (
                    Metric("bundles_per_s", "bundles/s", "higher", chart=True),
                    Metric("p50_ms", "p50 ms", "lower"),
                    Metric("p99_ms", "p99 ms", "lower", chart=True),
                    SERVER_BUNDLE,
                    DB_BUNDLE,
                    CLIENT_BUNDLE,
                ),
            )

            def conc(target: Target, rnd: int, d: int = devices) -> Figures:
                return workloads.concurrency(target, d, scale.concurrency_seconds, f"c{d}-r{rnd}")

            steps.append(Step(item, conc))
    small, large = scale.small_bundles, scale.large_rows
    if "pull" in args.workloads:
        for user, rows, title in (
            ("pull-small", small, f"pull {small:,} one-row bundles"),
            ("pull-large", large, f"pull {large:,} rows in {scale.large_bundles} bundles"),
        ):
            item = Item(
                f"pull.{user.removeprefix('pull-')}",
                title,
                (ROWS, SERVER_ROW, DB_ROW, PEAK, GROWTH),
                "raw JSON read",
            )

            def pulled(target: Target, rnd: int, u: str = user, n: int = rows) -> Figures:
                return workloads.pull(target, u, budget, runs, n)

            def read(rnd: int, u: str = user) -> float:
                return asyncio.run(
                    baselines.read_rate(a_dsn, baselines.PULL_READ, u, budget, runs, decode=True)
                )

            steps.append(Step(item, pulled, read))
    if "snapshot" in args.workloads:
        item = Item(
            "snapshot",
            f"snapshot, {large:,}-row scope, {scale.page_rows}-row pages",
            (ROWS, SERVER_ROW, DB_ROW, PEAK, GROWTH),
            "raw read",
        )

        def snap(target: Target, rnd: int) -> Figures:
            return workloads.snapshot(target, "pull-large", scale.page_rows, budget, 1)

        def jsonb(rnd: int) -> float:
            return asyncio.run(
                baselines.read_rate(a_dsn, baselines.SNAPSHOT_READ, "pull-large", budget, runs)
            )

        steps.append(Step(item, snap, jsonb))
    if "sdk" in args.workloads:  # the oversqlite client beside plain SQLite (bench/sdk.py)
        folder = Path(make_tempdir("oversync-bench-sdk-"))
        steps += [Step(*parts) for parts in sdk.steps("pull-large", scale.large_rows, folder)]
    return steps


def seed(targets: list[Target], args: argparse.Namespace, scale: Scale) -> None:
    if not {"pull", "snapshot", "sdk"} & set(args.workloads):
        return
    per_bundle = scale.large_rows // scale.large_bundles
    for target in targets:
        started = time.perf_counter()
        workloads.seed(target, "pull-small", scale.small_bundles, 1)
        workloads.seed(target, "pull-large", scale.large_bundles, per_bundle)
        _note(f"seeded {target.key} in {time.perf_counter() - started:.0f} s")


# ------------------------------------------------------------------------------ running


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _headline(item: Item, figures: Figures) -> str:
    metric = item.metrics[0]
    value = figures.get(metric.key)
    return f"{value:,.1f} {metric.label}" if value is not None else "-"


def measure(steps: list[Step], targets: list[Target], rounds: int) -> None:
    for rnd in range(rounds):
        for step in steps:
            shown = []
            for target in targets:
                figures = step.run(target, rnd)
                step.item.samples.setdefault(target.key, []).append(figures)
                shown.append(f"{target.key} {_headline(step.item, figures)}")
            if step.baseline is not None:
                rate = step.baseline(rnd)
                step.item.baseline_samples.append(rate)
                shown.append(f"{step.item.baseline_name} {rate:,.0f} rows/s")
            _note(f"[round {rnd + 1}/{rounds}] {step.item.id}: " + ", ".join(shown))


async def _pg_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    args, scale = parse(argv)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    name = args.name or time.strftime("%Y%m%d-%H%M%S") + (
        f"-vs-{args.compare}".replace("/", "_").replace("~", "_") if args.compare else ""
    )
    load_before = os.getloadavg()
    wall0, client0 = time.perf_counter(), procstat.own_cpu_seconds()
    log_dir = make_tempdir("oversync-bench-")
    labels = {"A": describe_work_tree()}
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, log_dir, ignore_errors=True)
        pg: Cluster = stack.enter_context(cluster(args.admin_dsn or None))
        raw_dsn = stack.enter_context(database(pg.dsn))
        trees = [("A", REPO_ROOT, args.server_arg)]
        revision = None
        if args.compare:
            revision = stack.enter_context(materialised(args.compare))
            labels["B"] = revision.short
            trees.append(("B", revision.tree, args.compare_server_arg))
        targets = []
        for key, tree, extra in trees:
            dsn = stack.enter_context(database(pg.dsn))
            served = stack.enter_context(server(dsn, log_dir, tree=tree, args=extra, name=key))
            targets.append(Target(key, labels[key], served, dsn, pg.postmaster_pid))
        pg_version = asyncio.run(_pg_version(raw_dsn))
        _note(f"servers up: {', '.join(f'{k} = {v}' for k, v in labels.items())}")
        seed(targets, args, scale)
        steps = plan(args, scale, raw_dsn, targets[0].dsn)
        measure(steps, targets, scale.rounds)
    items = [step.item for step in steps]
    keys = list(labels)
    found = report.goals(items, keys)
    result: dict[str, Any] = {
        "meta": {
            "started_at": started_at,
            "seconds": time.perf_counter() - wall0,
            "bench_cpu_seconds": procstat.own_cpu_seconds() - client0,
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "postgresql": pg_version,
            "database_cpu_measured": pg.postmaster_pid is not None,
            "scale": asdict(scale),
            "workloads": list(args.workloads),
            "targets": {
                "A": {"label": labels["A"], "tree": str(REPO_ROOT), "server_args": args.server_arg},
                **(
                    {
                        "B": {
                            "label": labels["B"],
                            "commit": revision.commit,
                            "subject": revision.subject,
                            "server_args": args.compare_server_arg,
                        }
                    }
                    if revision
                    else {}
                ),
            },
        },
        "goals": found,
        "items": report.summarise(items, keys),
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path = args.output_dir / f"{name}.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    title = f"oversync bench {started_at}: " + ", ".join(f"{k} = {v}" for k, v in labels.items())
    drawn = not args.no_chart and report.chart(items, labels, json_path.with_suffix(".png"), title)
    print(report.table(items, labels))
    print()
    print(report.goals_text(found))
    meta = result["meta"]
    print(
        f"\n{meta['seconds']:.0f} s; load generator CPU {meta['bench_cpu_seconds']:.1f} s;"
        f" load average {load_before[0]:.2f} before, {meta['loadavg_after'][0]:.2f} after"
        f" ({meta['cpus']} cores)"
    )
    print(f"wrote {json_path}" + (f" and {json_path.with_suffix('.png')}" if drawn else ""))
    if not drawn and not args.no_chart:
        print("no chart: matplotlib is missing (pip install -e '.[bench]')")
    return 0
