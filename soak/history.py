"""The history a device records: append-only JSONL, one event a line, fsynced per event.

The device process writes its own history, so what it says survives its own SIGKILL: an event
is on disk before the next step starts. A torn last line (a kill in the middle of a write) is
ignored by the reader.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class HistoryWriter:
    """Appends events to ``path``; each ``log()`` returns after the line reached the disk."""

    def __init__(self, path: Path, **fields: Any) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._fields = fields
        self._lock = threading.Lock()  # the SDK's background thread logs too

    def log(self, ev: str, **data: Any) -> None:
        with self._lock:
            event = {"ev": ev, "t": round(time.time(), 3), **self._fields, **data}
            os.write(self._fd, (json.dumps(event, sort_keys=True) + "\n").encode())
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


def read_history(path: Path) -> Iterator[Event]:
    """The complete events of a history file, in order (a torn last line is skipped)."""
    if not path.exists():
        return
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return
            yield json.loads(line)
