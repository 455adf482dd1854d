"""`python -m bench`: push and pull throughput through a real server, as ratios to raw asyncpg."""

from __future__ import annotations

import sys

from bench.throughput import main

if __name__ == "__main__":
    sys.exit(main())
