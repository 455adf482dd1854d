"""The faults a soak run injects, each switchable by name (``--faults``).

Proxy faults (``soak.proxy.PROXY_FAULTS``) hit single requests at the rates below. The others
are events the run schedules at random, one at a time:

- ``server_sigkill`` / ``server_sigterm``: a server process, preferably one with a push commit
  in flight, then started again on its port;
- ``pg_terminate``: ``pg_terminate_backend`` of every server connection;
- ``pg_restart``: PostgreSQL stopped (fast shutdown) and started again;
- ``device_sigkill``: a device process at a random point, restarted on the same SQLite file.

History pruning under lagging devices is always on: the servers keep only a few bundles per
user (``--retained-bundles``) while devices go offline for seconds at a time.
"""

from __future__ import annotations

from soak.proxy import PROXY_FAULTS

PROXY_RATES = {
    "drop_request": 0.02,
    "drop_response": 0.03,
    "delay": 0.05,
    "cut_body": 0.02,
    "duplicate": 0.03,
}
EVENT_FAULTS = ("server_sigkill", "server_sigterm", "pg_terminate", "pg_restart", "device_sigkill")
# relative frequency of the scheduled events
EVENT_WEIGHTS = {
    "server_sigkill": 3,
    "server_sigterm": 2,
    "pg_terminate": 3,
    "pg_restart": 1,
    "device_sigkill": 4,
}
ALL_FAULTS = (*PROXY_FAULTS, *EVENT_FAULTS)


def parse_faults(text: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma-separated list of fault names."""
    if text == "all":
        return ALL_FAULTS
    if text in ("", "none"):
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(ALL_FAULTS))
    if unknown:
        raise ValueError(f"unknown faults {unknown}; known: {', '.join(ALL_FAULTS)}")
    return names
