"""Source rotation: a rotated snapshot retires the previous source and reserves its replacement
(reference/server.md §6.3, protocol.md §6.9).

`rotate_source` runs inside the snapshot-create transaction, so the rotation and the frozen image
commit together or not at all:

| previous source      | replacement (new)                 | result                                   |
| -------------------- | --------------------------------- | ---------------------------------------- |
| retired, by another  | any                               | 409 source_retired (names the real one)  |
| retired, by new      | unknown                           | new reserved (idempotent retry)          |
| retired, by new      | reserved / active                 | nothing to do (idempotent retry)         |
| retired, by new      | retired                           | 409 source_replacement_invalid           |
| unknown/active/resvd | known in any state                | 409 source_replacement_invalid           |
| unknown/active/resvd | unknown                           | new reserved; previous retired (keeps its watermark) |

A reserved source starts at `source_bundle_id` 1; its first committed bundle makes it active. A
retired source is refused by every write path (push create and commit, server writes).
"""

from __future__ import annotations

from dataclasses import dataclass

from oversync_server.engine.errors import SyncError
from oversync_server.engine.scope import Connection
from oversync_server.engine.sources import source_retired

__all__ = [
    "REPLACEMENT_REASONS",
    "SourceReplacement",
    "rotate_source",
    "validate_replacement",
]

REPLACEMENT_REASONS = frozenset(
    {
        "history_pruned",
        "source_sequence_out_of_order",
        "source_sequence_changed",
        "source_retired",
    }
)


@dataclass(frozen=True, slots=True)
class SourceReplacement:
    """A `source_replacement` request: retire `previous`, continue as `new` (values as sent)."""

    previous_source_id: str
    new_source_id: str
    reason: str


def _invalid_request(message: str) -> SyncError:
    return SyncError("snapshot_session_invalid", message)


def validate_replacement(source_id: str, request: SourceReplacement) -> SourceReplacement:
    """The trimmed request, checked against the authenticated source (400 otherwise)."""
    previous = request.previous_source_id.strip()
    new, why = request.new_source_id.strip(), request.reason.strip()
    if previous != source_id:
        raise _invalid_request("previous_source_id must match authenticated source_id")
    if not new:
        raise _invalid_request("new_source_id is required for source replacement")
    if new == previous:
        raise _invalid_request("new_source_id must differ from previous_source_id")
    if why not in REPLACEMENT_REASONS:
        raise _invalid_request("source replacement reason is unsupported")
    return SourceReplacement(previous, new, why)


def _replacement_invalid(message: str) -> SyncError:
    return SyncError("source_replacement_invalid", message)


# Both rows, locked: under the snapshot's REPEATABLE READ a concurrent change to either (e.g. a
# commit by the previous source) is a serialization failure, and the create is re-run.
_LOCK_SOURCES = """
SELECT source_id, state, replaced_by_source_id
FROM sync.source_state
WHERE user_pk = $1 AND source_id = ANY($2::text[])
FOR UPDATE
"""

_RESERVE = """
INSERT INTO sync.source_state (user_pk, source_id, state, max_committed_source_bundle_id)
VALUES ($1, $2, 'reserved', 0)
ON CONFLICT (user_pk, source_id) DO NOTHING
"""

# Retire the previous source, keeping its watermark (or creating it at 0 if it never committed).
_RETIRE = """
INSERT INTO sync.source_state
    (user_pk, source_id, state, max_committed_source_bundle_id, replaced_by_source_id,
     retirement_reason)
VALUES ($1, $2, 'retired', 0, $3, $4)
ON CONFLICT (user_pk, source_id) DO UPDATE
SET state = 'retired', replaced_by_source_id = EXCLUDED.replaced_by_source_id,
    retirement_reason = EXCLUDED.retirement_reason
"""


async def rotate_source(
    conn: Connection,
    *,
    user_id: str,
    user_pk: int,
    source_id: str,
    replacement: SourceReplacement,
) -> None:
    """Retire `replacement.previous_source_id` and reserve `new_source_id` (see the table above).

    `source_id` is the authenticated source; the request is validated first (400
    `snapshot_session_invalid`, after the scope gate as in the reference). Runs in the caller's
    transaction; raises 409 `source_retired` / `source_replacement_invalid`.
    """
    replacement = validate_replacement(source_id, replacement)
    previous, new = replacement.previous_source_id, replacement.new_source_id
    rows = await conn.fetch(_LOCK_SOURCES, user_pk, [previous, new])
    states = {row["source_id"]: row for row in rows}
    old, replacement_row = states.get(previous), states.get(new)
    if old is not None and old["state"] == "retired":
        if old["replaced_by_source_id"] != new:
            raise source_retired(
                user_id=user_id,
                source_id=previous,
                replaced_by_source_id=old["replaced_by_source_id"],
            )
        if replacement_row is None:
            await conn.execute(_RESERVE, user_pk, new)
        elif replacement_row["state"] == "retired":
            raise _replacement_invalid(
                f"replacement source {new} is not available for rotated rebuild"
            )
        return
    if replacement_row is not None:
        raise _replacement_invalid(f"replacement source {new} is already known for user {user_id}")
    await conn.execute(_RESERVE, user_pk, new)
    await conn.execute(_RETIRE, user_pk, previous, new, replacement.reason)
