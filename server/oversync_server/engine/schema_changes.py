"""What changed between the shape the sync schema knows and the configured, live one.

Shared by bootstrap (which extends the catalog, refuses breaking table changes and logs column
changes) and `oversync-server schema check` (which prints every change):

    plan = plan_table_ids(wanted, stored)      # stored ids kept, new tables get the next free ids
    plan.problems()                            # removed/renamed tables, changed sync keys
    column_changes("business.notes", recorded, current)   # [Change(additive|breaking, ...)]

Table ids are what `sync.table_catalog` stores, never recomputed: bundle rows, row versions and
every session row reference them. For a fresh sync schema they are the reference's 1-based
positions in the bytewise-sorted `schema.table` list; a table registered later gets the next free
id, so a database that only ever gained tables sorting last keeps the reference's ids.

`sync.registered_columns` (an oversync-py table, written by bootstrap) records each registered
table's columns as last served; column changes are the difference between it and the live table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from oversync_server.engine.catalog import SCOPE_COLUMN, SUPPORTED_TYPES, ColumnInfo, KeyKind

GUIDE = "docs/schema-changes.md"
ChangeKind = Literal["additive", "breaking"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference, as `schema check` prints it: `additive|breaking  subject: what; fix`."""

    kind: ChangeKind
    subject: str
    what: str
    fix: str = ""

    @property
    def breaking(self) -> bool:
        return self.kind == "breaking"

    def line(self) -> str:
        return f"{self.kind}  {self.subject}: {self.what}" + (
            f"; fix: {self.fix}" if self.fix else ""
        )


# ------------------------------------------------------------------------------ table ids


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A `sync.table_catalog` row, or a configured table in the same terms (`table_id` 0 and,
    when its key column cannot be read, `key_kind` None)."""

    table_id: int
    schema: str
    table: str
    key_column: str
    key_kind: int | None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    def describe_key(self) -> str:
        kind = {int(KeyKind.UUID): "uuid", int(KeyKind.TEXT): "text"}.get(self.key_kind or 0)
        return f"{self.key_column} ({kind})" if kind else self.key_column


@dataclass(frozen=True, slots=True)
class TableIdPlan:
    """The ids of the configured tables and what stands in the way of serving them."""

    ids: dict[str, int]
    added: tuple[str, ...]  # configured, not in the stored catalog (ids assigned here)
    removed: tuple[CatalogEntry, ...]  # stored, no longer configured
    key_changed: tuple[tuple[CatalogEntry, CatalogEntry], ...]  # (stored, configured)
    similar: dict[str, str] = field(default_factory=dict)  # removed name -> added look-alike

    def problems(self) -> list[Change]:
        """The breaking table changes: bootstrap refuses to start on any of them."""
        changes = []
        for entry in self.removed:
            name = entry.qualified_name
            hint = ""
            if name in self.similar:
                hint = f" (newly registered {self.similar[name]} has the same columns: a rename?)"
            changes.append(
                Change(
                    "breaking",
                    name,
                    f"registered table removed or renamed{hint}: sync.table_catalog lists it as"
                    f" table_id {entry.table_id}, and stored bundles, row versions and devices"
                    " reference that id, so the sync schema cannot follow a removal or rename",
                    f"put {name} back into registered_tables; to rename or retire it, register"
                    " the new table beside it and move clients over with the version gate"
                    f" (expand/contract, {GUIDE}); a table that never synced a row can be"
                    f" unregistered with DELETE FROM sync.table_catalog WHERE table_id ="
                    f" {entry.table_id} (the sync foreign keys refuse it otherwise)",
                )
            )
        for stored, wanted in self.key_changed:
            name = stored.qualified_name
            changes.append(
                Change(
                    "breaking",
                    name,
                    f"sync key changed from {stored.describe_key()} to {wanted.describe_key()}:"
                    " stored bundles, row versions and devices identify its rows by the old key",
                    f"restore sync_key_columns: [{stored.key_column}] (and its type); to change"
                    " the key, register a new table with the new key and move clients over"
                    f" (expand/contract, {GUIDE})",
                )
            )
        return changes


def plan_table_ids(
    wanted: Sequence[CatalogEntry],
    stored: Sequence[CatalogEntry],
    *,
    stored_columns: Mapping[int, Sequence[str]] | None = None,
    live_columns: Mapping[str, Sequence[str]] | None = None,
) -> TableIdPlan:
    """Keep every stored id; give configured tables the catalog lacks the next free ids, in
    bytewise name order (a fresh catalog gets the reference's 1-based positions).

    `stored_columns` (by table id) and `live_columns` (by name), when given, let a removed table
    be matched with a new one of the same column names: probably a rename.
    """
    by_name = {entry.qualified_name: entry for entry in stored}
    configured = {entry.qualified_name: entry for entry in wanted}
    ids: dict[str, int] = {}
    key_changed = []
    for name, entry in configured.items():
        old = by_name.get(name)
        if old is None:
            continue
        ids[name] = old.table_id
        kind_differs = entry.key_kind is not None and entry.key_kind != old.key_kind
        if entry.key_column != old.key_column or kind_differs:
            key_changed.append((old, entry))
    next_id = max((entry.table_id for entry in stored), default=0) + 1
    added = sorted((name for name in configured if name not in by_name), key=str.encode)
    for name in added:
        ids[name] = next_id
        next_id += 1
    removed = tuple(entry for entry in stored if entry.qualified_name not in configured)
    similar: dict[str, str] = {}
    if stored_columns is not None and live_columns is not None:
        for entry in removed:
            old_columns = set(stored_columns.get(entry.table_id, ()))
            for name in added:
                if old_columns and old_columns == set(live_columns.get(name, ())):
                    similar[entry.qualified_name] = name
                    break
    return TableIdPlan(
        ids=ids,
        added=tuple(added),
        removed=removed,
        key_changed=tuple(key_changed),
        similar=similar,
    )


# ------------------------------------------------------------------------------ columns

# Same wire type, and every value of the old type is kept exactly by the new one (not char(n):
# its conversions drop or add trailing blanks).
_WIDENINGS = frozenset(
    {
        ("int2", "int4"),
        ("int2", "int8"),
        ("int4", "int8"),
        ("float4", "float8"),
        ("varchar", "text"),
    }
)
_MODIFIER = re.compile(r"\((\d+)(?:,(\d+))?\)")


def _widened(old: ColumnInfo, new: ColumnInfo) -> bool:
    if (old.type_name, new.type_name) in _WIDENINGS:
        return True
    if old.type_name != new.type_name or old.type_name == "bpchar":
        return False
    old_mod, new_mod = _MODIFIER.search(old.sql_type), _MODIFIER.search(new.sql_type)
    if new_mod is None:  # varchar(20) -> varchar, numeric(10,2) -> numeric
        return True
    if old_mod is None:
        return False
    if old.type_name == "numeric":  # numeric(p,s) -> numeric(p',s) with more integer digits
        old_scale, new_scale = int(old_mod.group(2) or 0), int(new_mod.group(2) or 0)
        return new_scale == old_scale and int(new_mod.group(1)) >= int(old_mod.group(1))
    return int(new_mod.group(1)) >= int(old_mod.group(1))


def describe_column(column: ColumnInfo) -> str:
    """`name type [NOT NULL] [DEFAULT] [GENERATED]`, as the changes name a column."""
    parts = [column.name, column.sql_type]
    if column.not_null:
        parts.append("NOT NULL")
    if column.generated:
        parts.append("GENERATED")
    elif column.has_default:
        parts.append("DEFAULT")
    return " ".join(parts)


def _fills_itself(column: ColumnInfo) -> bool:
    """An INSERT that omits the column still succeeds."""
    return column.generated or column.has_default or not column.not_null


def column_changes(
    subject: str, recorded: Iterable[ColumnInfo], current: Iterable[ColumnInfo]
) -> list[Change]:
    """Every difference between a table's recorded columns and its live ones, classified for
    app versions that have the recorded shape (an old client keeps its local table)."""
    old = {c.name: c for c in recorded if c.name != SCOPE_COLUMN}
    new = {c.name: c for c in current if c.name != SCOPE_COLUMN}
    changes: list[Change] = []
    for name, column in new.items():
        if name in old:
            continue
        described = describe_column(column)
        if _fills_itself(column):
            filled = "its default" if column.has_default or column.generated else "NULL"
            changes.append(
                Change(
                    "additive",
                    subject,
                    f"new column {described}: app versions without it keep syncing (their"
                    f" inserts get {filled}, their pulls ignore it)",
                )
            )
        else:
            changes.append(
                Change(
                    "breaking",
                    subject,
                    f"new column {described} without a default: inserts pushed by app versions"
                    " without it omit it and are refused (400 push_commit_invalid)",
                    f"add a DEFAULT (ALTER TABLE {subject} ALTER COLUMN {name} SET DEFAULT ...)"
                    f" or make it nullable (ALTER TABLE {subject} ALTER COLUMN {name} DROP NOT"
                    " NULL)",
                )
            )
    for name, column in old.items():
        if name in new:
            continue
        changes.append(
            Change(
                "breaking",
                subject,
                f"column {describe_column(column)} removed: app versions that have it push it"
                " (refused as an unknown column) and miss it in pulls",
                f"restore it until min_client_schema_version excludes every app version that"
                f" uses it, then drop it (expand/contract, {GUIDE})",
            )
        )
    for name, column in new.items():
        before = old.get(name)
        if before is not None:
            changes.extend(_changed_column(subject, before, column))
    return changes


def _changed_column(subject: str, old: ColumnInfo, new: ColumnInfo) -> list[Change]:
    changes: list[Change] = []
    name = new.name
    if old.sql_type != new.sql_type:
        old_kind, new_kind = SUPPORTED_TYPES.get(old.type_name), SUPPORTED_TYPES.get(new.type_name)
        change = f"column {name} changed type from {old.sql_type} to {new.sql_type}"
        if old_kind is not None and old_kind == new_kind and _widened(old, new):
            changes.append(Change("additive", subject, f"{change} (widened, same wire type)"))
        else:
            reason = (
                f"the wire type changes from {old_kind} to {new_kind}"
                if old_kind != new_kind
                else "values app versions send may no longer fit"
            )
            changes.append(
                Change(
                    "breaking",
                    subject,
                    f"{change}: {reason}",
                    f"restore the type; to change it, add a column of the new type beside it and"
                    f" move clients over (expand/contract, {GUIDE})",
                )
            )
    if new.not_null and not old.not_null:
        changes.append(
            Change(
                "breaking",
                subject,
                f"column {name} became NOT NULL: pushes of app versions that send NULL for it"
                " are refused",
                f"drop the constraint (ALTER TABLE {subject} ALTER COLUMN {name} DROP NOT NULL)"
                " until min_client_schema_version excludes every app version that may send NULL",
            )
        )
    elif old.not_null and not new.not_null:
        changes.append(
            Change(
                "breaking",
                subject,
                f"column {name} became nullable: app versions whose local column is NOT NULL"
                " cannot apply rows where it is NULL",
                f"keep it NOT NULL until min_client_schema_version excludes those app versions"
                f" (ALTER TABLE {subject} ALTER COLUMN {name} SET NOT NULL)",
            )
        )
    if _fills_itself(old) and not _fills_itself(new) and not (new.not_null and not old.not_null):
        changes.append(
            Change(
                "breaking",
                subject,
                f"column {name} lost its default while NOT NULL: inserts pushed by app versions"
                " without the column are refused",
                f"keep the DEFAULT while any supported app version lacks {name}",
            )
        )
    return changes
