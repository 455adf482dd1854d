"""The asyncpg connection class of the server's pool (`engine.pool`, `engine.txpool`)."""

from __future__ import annotations

from typing import Any

import asyncpg

__all__ = ["SyncConnection"]


class SyncConnection(asyncpg.Connection):
    """A pooled connection that can skip the pool's reset on its next release."""

    __slots__ = ("_skip_reset",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip_reset = False

    def skip_next_reset(self) -> None:
        """The session holds nothing to reset (no advisory lock, setting, cursor or LISTEN):
        the next release returns it to the pool as it is."""
        self._skip_reset = True
