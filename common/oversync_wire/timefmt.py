"""Go ``time.RFC3339Nano`` formatting."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339_nano"]


def rfc3339_nano(dt: datetime) -> str:
    """Format ``dt`` like Go's ``t.UTC().Format(time.RFC3339Nano)``.

    The instant is converted to UTC and written with a ``Z`` suffix; the fractional second has
    its trailing zeros removed and is omitted entirely when zero (Python datetimes carry at most
    microseconds): ``2026-01-02T03:04:05.1234Z``, ``2026-01-02T03:04:05Z``.

    A naive datetime (no ``tzinfo``) names no instant, so it raises :class:`ValueError`; attach a
    timezone first (``dt.replace(tzinfo=UTC)`` if it is known to be UTC).
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"rfc3339_nano needs a timezone-aware datetime, got naive {dt!r}")
    u = dt.astimezone(UTC)
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    if u.microsecond:
        text += "." + f"{u.microsecond:06d}".rstrip("0")
    return text + "Z"
