"""`python -m bench` (`make bench`): server throughput beside raw asyncpg and, with --compare, an
older revision; see bench/throughput.py."""

from __future__ import annotations

import sys

from bench.throughput import main

if __name__ == "__main__":
    sys.exit(main())
