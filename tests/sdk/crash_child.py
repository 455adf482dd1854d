"""Run a push in a child process that is killed (os._exit) at a chosen point.

Usage: python crash_child.py DB BASE_URL TOKEN USER MODE, where MODE is one of
``after-chunk``, ``after-commit`` (the server committed; the answer is never processed) or
``in-replay`` (killed inside the local replay transaction, before it commits).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
from sdk_helpers import FaultTransport, business_config

from oversqlite import Client


def main() -> None:
    db, base_url, token, user, mode = sys.argv[1:6]
    transport = FaultTransport(httpx.HTTPTransport())
    tracer = None
    if mode == "after-chunk":
        transport.exit_process("chunk")
    elif mode == "after-commit":
        transport.exit_process("commit")
    elif mode == "in-replay":

        def tracer(sql: str) -> None:
            if "DELETE FROM _sync_outbox_rows" in sql:  # the replay's last statements
                os._exit(17)

    client = Client(
        Path(db),
        business_config(),
        base_url=base_url,
        token=token,
        transport=transport,
        tracer=tracer,
    ).open()
    client.attach(user)
    client.push_pending()
    sys.exit(0)  # not reached when the fault fires


if __name__ == "__main__":
    main()
