"""The garbage collector's settings in a serving process (`http_server.SyncServer.startup`).

A large push chunk builds tens of thousands of short-lived container objects (decoded rows,
request models, prepared rows, records). With CPython's default thresholds (700, 10, 10) a
1,000-row chunk set off a dozen collections, and every older-generation pass walked all the
objects the application holds for its whole life (modules, routes, schemas, the catalog): the
validation of such a chunk cost 2.6 times its work without a collector. Once the application
has started, `tune()` moves everything it holds into the permanent generation (`gc.freeze`,
which also keeps forked workers' pages shared) and raises the first threshold, so a request's
garbage is freed by reference counting before a pass runs; reference cycles are still collected.
"""

from __future__ import annotations

import gc

# (first generation, second, third): collect the young generation after this many net
# container allocations instead of 700.
THRESHOLDS = (10_000, 10, 10)


def tune() -> None:
    """Freeze what the started application holds and raise the collection thresholds."""
    gc.collect()  # what is garbage now should not be frozen
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
