"""Profile a server under the 1-row-bundle load: py-spy on a real `serve` process.

    python -m bench.profile [--devices 10] [--seconds 20] [--workers 1] [--output FILE]
    python -m bench.profile --rows 5000 [--table users|posts] ...

Starts a throwaway PostgreSQL and one server (bench/serving.py), drives `--devices` concurrent
devices pushing 1-row bundles (bench/workloads.py, the `concurrency` workload), or with `--rows`
one device pushing bundles of that many rows (the `push` workload), while
`py-spy record` samples every process of the server, and writes py-spy's flame graph (SVG), or
with `--format raw` its collapsed stacks, for `flamegraph.pl` or a text summary (`--top N`
prints the N functions with the most samples, self and total).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench.serving import cluster, database, server
from bench.workloads import Figures, Target, concurrency, push
from oversync_server.localpg import make_tempdir


def _summary(raw: Path, top: int) -> str:
    """The functions with the most samples in py-spy's collapsed stacks: self and total."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        weight = int(count)
        samples += weight
        own[frames[-1]] += weight
        for frame in set(frames):
            total[frame] += weight
    lines = [f"{samples} samples", "", "self %  function"]
    lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "total %  function"]
    lines += [f"{100 * n / samples:6.1f}  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rows", type=int, default=0, help="push bundles of this many rows")
    parser.add_argument("--table", choices=("users", "posts"), default="users")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--format", choices=("flamegraph", "raw"), default="raw")
    parser.add_argument("--output", type=Path, default=Path("bench/results/profile.txt"))
    parser.add_argument("--top", type=int, default=40, help="with --format raw: print a summary")
    parser.add_argument("--native", action="store_true", help="also sample C frames (slower)")
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    logs = make_tempdir("oversync-profile-")
    with (
        cluster(None) as pg,
        database(pg.dsn) as dsn,
        server(dsn, logs, args=("--workers", str(args.workers))) as served,
    ):
        target = Target("A", "profiled", served, dsn, pg.postmaster_pid)

        def drive(seconds: float, tag: str) -> Figures:
            if args.rows:
                return push(target, args.table, args.rows, seconds, 1, tag, full=False)
            return concurrency(target, args.devices, seconds, tag)

        drive(2.0, "warm")  # warm-up, not sampled
        record = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(served.pid),
                "--subprocesses",
                "--rate",
                str(args.rate),
                "--duration",
                str(int(args.seconds)),
                "--format",
                args.format,
                "--output",
                str(args.output),
                *(["--native"] if args.native else []),
            ],
            stdout=subprocess.DEVNULL,
        )
        figures: dict[str, float] = {}
        load = threading.Thread(target=lambda: figures.update(drive(args.seconds, "profiled")))
        load.start()
        load.join()
        record.wait()
    if args.rows:
        print(
            f"{figures.get('rows_per_s', 0):.0f} rows/s,"
            f" server CPU {figures.get('server_cpu_us_per_row', 0):.1f} µs/row,"
            f" db CPU {figures.get('db_cpu_us_per_row', 0):.1f} µs/row"
        )
    else:
        print(
            f"{figures.get('bundles_per_s', 0):.1f} bundles/s,"
            f" server CPU {figures.get('server_cpu_ms_per_bundle', 0):.2f} ms/bundle"
        )
    if args.format == "raw" and args.top:
        print(_summary(args.output, args.top))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
