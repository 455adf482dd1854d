"""Server rows from the generated models, validated, and bundle verification (count + hash)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oversqlite._apply import ServerRow, parse_server_row
from oversqlite._drift import SchemaDrift
from oversqlite._errors import ProtocolError
from oversqlite._schema import TableInfo
from oversync_client.models import BundleRow, SnapshotRow
from oversync_client.types import Unset
from oversync_wire import CanonicalJSONError, bundle_hash

__all__ = ["bundle_row_dicts", "parse_bundle_rows", "parse_snapshot_row", "verify_bundle"]


def bundle_row_dicts(rows: Sequence[BundleRow]) -> list[dict[str, Any]]:
    """Bundle rows as served (plain JSON values), for hashing."""
    return [
        {
            "schema": row.schema,
            "table": row.table,
            "key": row.key.additional_properties,
            "op": str(row.op),
            "row_version": row.row_version,
            "payload": None
            if isinstance(row.payload, Unset)
            else row.payload.additional_properties,
        }
        for row in rows
    ]


def verify_bundle(
    what: str, rows: Sequence[Mapping[str, Any]], row_count: int, expected_hash: str
) -> None:
    """Check a complete bundle's row count and ``bundle_hash``; raise ProtocolError otherwise."""
    if len(rows) != row_count:
        raise ProtocolError(f"{what}: received {len(rows)} rows, the server announced {row_count}")
    try:
        actual, _ = bundle_hash(rows)
    except CanonicalJSONError as exc:
        raise ProtocolError(f"{what}: rows cannot be hashed: {exc}") from None
    if actual != expected_hash:
        raise ProtocolError(
            f"{what}: bundle_hash mismatch (computed {actual}, server sent {expected_hash}); "
            "nothing was applied"
        )


def parse_bundle_rows(
    tables: Mapping[str, TableInfo],
    schema: str,
    rows: Sequence[Mapping[str, Any]],
    bundle_seq: int,
    drift: SchemaDrift | None = None,
) -> list[ServerRow | None]:
    """Validate the rows of bundle ``bundle_seq`` (``None`` for tables not managed here).

    Call it after :func:`verify_bundle`: payloads are fitted to the local tables here.
    """
    parsed: list[ServerRow | None] = []
    for row in rows:
        if row["row_version"] != bundle_seq:
            raise ProtocolError(
                f"row of bundle {bundle_seq} carries row_version {row['row_version']!r}"
            )
        parsed.append(
            parse_server_row(
                tables,
                schema,
                row_schema=row["schema"],
                table=row["table"],
                key=row["key"],
                op=row["op"],
                row_version=row["row_version"],
                payload=row["payload"],
                drift=drift,
            )
        )
    return parsed


def parse_snapshot_row(
    tables: Mapping[str, TableInfo],
    schema: str,
    row: SnapshotRow,
    drift: SchemaDrift | None = None,
) -> ServerRow | None:
    return parse_server_row(
        tables,
        schema,
        row_schema=row.schema,
        table=row.table,
        key=row.key.additional_properties,
        op="INSERT",
        row_version=row.row_version,
        payload=row.payload.additional_properties,
        drift=drift,
    )
