"""The rules every client-chosen identifier must meet: user ids (JWT `sub`), source ids.

They are stored in indexed TEXT columns (`user_state.user_id`, `source_state.source_id`,
`_sync_scope_id` of every business row) and echoed in messages, so they are refused up front
instead of failing deep in PostgreSQL as a 500: PostgreSQL text cannot hold NUL, a b-tree entry
is limited to about 2.7 KB, and a lone surrogate (valid in JSON) cannot be encoded as UTF-8.

MAX_IDENTIFIER_LENGTH (255 characters, at most 1020 UTF-8 bytes) is well above real ids (UUIDs,
provider subjects like `auth0|...` or e-mail addresses) and well below the index limit.
"""

from __future__ import annotations

import re

__all__ = ["MAX_IDENTIFIER_LENGTH", "identifier_problem"]

MAX_IDENTIFIER_LENGTH = 255
# Unicode category Cc (C0 controls with NUL, DEL, C1 controls) and lone surrogates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def identifier_problem(value: str) -> str | None:
    """Why `value` (already trimmed) is not a usable identifier, or None when it is.

    Refused: empty, longer than `MAX_IDENTIFIER_LENGTH` characters, any control character
    (NUL, C0, DEL, C1, Unicode category Cc) and anything that is not encodable as UTF-8.
    """
    if not value:
        return "must not be empty"
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return f"must be at most {MAX_IDENTIFIER_LENGTH} characters, got {len(value)}"
    if found := _CONTROL.search(value):
        return (
            f"must not contain control characters"
            f" (U+{ord(found.group()):04X} at position {found.start()})"
        )
    if found := _SURROGATE.search(value):
        return f"must be valid Unicode (a lone surrogate at position {found.start()})"
    return None
