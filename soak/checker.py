"""The checker: the devices' recorded histories against the server's audited bundle history.

For every user it proves, after quiescence:

- ``bundle_seq`` is gapless from 1, no bundle_seq was committed twice, and every committed
  bundle's ``bundle_hash`` and ``row_count`` recompute from its rows (``oversync_wire``);
- every write a device *reported committed* (a ``sync_ok`` with nothing pending followed it)
  is in the committed history exactly once (its unique tag in exactly one bundle row), unless
  the history shows it was superseded: a later write of the same key on the same device before
  that ``sync_ok`` (coalesced in the outbox), or a resolver decision that dropped it
  (``accept_server``, ``keep_merged``). No tag appears twice (duplicate), and every tag on the
  server was written by some device (nothing invented);
- a row only its owner device writes ends as the owner's last committed write (or a later one),
  so a deleted row never comes back (resurrection) and a committed one is never lost; such a
  row never conflicts;
- the server's business rows equal the replay of its committed history, and every device's
  managed tables equal the server's rows for its user.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from oversync_server.engine.capture import OP_DELETE, OP_NAMES
from oversync_server.engine.catalog import KeyKind
from oversync_server.engine.values import key_from_bytes
from oversync_wire import bundle_hash, parse_json_text
from soak.cluster import run_async
from soak.history import Event, read_history
from soak.rows import TAG_COLUMN, Rows, server_rows

Key = tuple[str, str]  # table, key text


@dataclass
class Write:
    tag: str
    device: str
    table: str
    key: str
    op: str  # upsert | delete
    index: int
    done_index: int | None = None
    commit_index: int | None = None


@dataclass
class AuditRow:
    bundle_seq: int
    ordinal: int
    table: str
    key: str
    op: str
    tag: str | None


@dataclass
class Failure:
    kind: str
    user: str
    message: str
    key: Key | None = None
    device: str | None = None  # the device whose tables diverged


@dataclass
class Report:
    failures: list[Failure] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    histories: dict[str, list[Event]] = field(default_factory=dict)
    audit: dict[str, list[AuditRow]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(
        self,
        kind: str,
        user: str,
        message: str,
        key: Key | None = None,
        device: str | None = None,
    ) -> None:
        self.failures.append(Failure(kind, user, message, key, device))

    def explain(self, failure: Failure, limit: int = 40) -> str:
        """The failure with the minimal history around its key: every event on the key, the
        sync result that followed each, and the key's committed bundle rows."""
        lines = [f"[{failure.kind}] user {failure.user}: {failure.message}"]
        if failure.key is None:
            return "\n".join(lines)
        table, key = failure.key
        for device, events in sorted(self.histories.items()):
            if not device.startswith(failure.user + "d"):
                continue
            shown: list[str] = []
            follow = False
            for event in events:
                touches = event.get("key") == key and event.get("table", table) == table
                if touches or (follow and event["ev"] in ("sync_ok", "sync_error", "detach")):
                    shown.append(
                        "    " + json.dumps({k: v for k, v in event.items() if k != "rows"})
                    )
                    follow = touches or (follow and event["ev"] == "sync_error")
            if shown:
                lines.append(f"  device {device}:")
                lines.extend(shown[-limit:])
        if failure.device is not None:
            lines.append(f"  {failure.device}'s attaches and pulls that moved its checkpoint:")
            lines.extend(_checkpoint_events(self.histories.get(failure.device, []))[-limit:])
        rows = [r for r in self.audit.get(failure.user, []) if (r.table, r.key) == failure.key]
        lines.append("  committed bundle rows for the key:")
        lines.extend(f"    seq {r.bundle_seq}#{r.ordinal} {r.op} tag={r.tag}" for r in rows)
        return "\n".join(lines)


async def load_audit(database_url: str, report: Report) -> dict[str, Rows]:
    """Check the committed history (gapless, hashes) and return each user's server rows."""
    conn = await asyncpg.connect(database_url)
    try:
        users = {
            r["user_pk"]: r["user_id"]
            for r in await conn.fetch("SELECT user_pk, user_id FROM sync.user_state")
        }
        catalog = {r["table_id"]: r for r in await conn.fetch("SELECT * FROM sync.table_catalog")}
        bundles: dict[tuple[int, int], list[asyncpg.Record]] = defaultdict(list)
        for event in await conn.fetch("SELECT * FROM soak_audit.bundle_events ORDER BY event_id"):
            bundles[(event["user_pk"], event["bundle_seq"])].append(event)
        rows: dict[tuple[int, int], list[asyncpg.Record]] = defaultdict(list)
        query = (
            "SELECT user_pk, bundle_seq, row_ordinal, table_id, key_bytes, op_code,"
            " payload_wire::text AS payload FROM soak_audit.row_events"
            " ORDER BY user_pk, bundle_seq, row_ordinal, event_id"
        )
        for row in await conn.fetch(query):
            rows[(row["user_pk"], row["bundle_seq"])].append(row)
        final = {user: await server_rows(conn, user) for user in users.values()}
    finally:
        await conn.close()

    seqs: dict[str, list[int]] = defaultdict(list)
    for (user_pk, seq), events in sorted(bundles.items()):
        user = users[user_pk]
        seqs[user].append(seq)
        inserts = sum(1 for e in events if e["op"] == "INSERT")
        if inserts != 1:
            report.fail("bundle_seq", user, f"bundle_seq {seq} was inserted {inserts} times")
        head = events[-1]
        wire_rows, history = [], report.audit.setdefault(user, [])
        ordinals = [r["row_ordinal"] for r in rows[(user_pk, seq)]]
        if ordinals != list(range(1, len(ordinals) + 1)):
            report.fail("bundle_rows", user, f"bundle {seq} has row ordinals {ordinals[:10]}...")
        for row in rows[(user_pk, seq)]:
            table = catalog[row["table_id"]]
            key = key_from_bytes(KeyKind(table["sync_key_kind"]), bytes(row["key_bytes"]))
            payload = None if row["payload"] is None else parse_json_text(row["payload"])
            op = OP_NAMES[row["op_code"]]
            wire_rows.append(
                {
                    "schema": table["schema_name"],
                    "table": table["table_name"],
                    "key": {table["sync_key_column"]: key},
                    "op": op,
                    "row_version": seq,
                    "payload": payload,
                }
            )
            tag_column = TAG_COLUMN.get(table["table_name"], "")
            tag = None if row["op_code"] == OP_DELETE else (payload or {}).get(tag_column)
            history.append(AuditRow(seq, row["row_ordinal"], table["table_name"], key, op, tag))
        digest, _ = bundle_hash(wire_rows)
        report.stats["bundles audited"] += 1
        report.stats["bundle rows audited"] += len(wire_rows)
        if digest != bytes(head["bundle_hash"]).hex() or len(wire_rows) != head["row_count"]:
            report.fail("bundle_hash", user, f"bundle {seq}: hash or row_count does not recompute")
    for user, numbers in seqs.items():
        if numbers != list(range(1, len(numbers) + 1)):
            missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
            report.fail("bundle_seq", user, f"bundle_seq not gapless: missing {missing[:10]}")
    return final


def check(
    run_dir: Path, database_url: str, users: list[str], shared: dict[str, set[str]]
) -> Report:
    """Check one run: histories in `run_dir`, the audited history in `database_url`."""
    report = Report()
    final = run_async(load_audit(database_url, report))
    for path in sorted(run_dir.glob("*.jsonl")):
        report.histories[path.stem] = list(read_history(path))
    for user in users:
        check_user(report, user, final.get(user, {}), shared.get(user, set()))
    return report


def check_user(report: Report, user: str, server: Rows, shared: set[str]) -> None:
    writes: dict[str, Write] = {}
    by_key: dict[tuple[str, str, str], list[Write]] = defaultdict(list)  # device, table, key
    dropped: dict[tuple[str, str, str], list[int]] = defaultdict(list)  # by a resolver
    devices = [d for d in report.histories if d.startswith(user + "d")]
    for device in devices:
        events = report.histories[device]
        finished = False
        for i, event in enumerate(events):
            ev = event["ev"]
            if ev == "intent":
                write = Write(event["tag"], device, event["table"], event["key"], event["op"], i)
                writes[write.tag] = write
                by_key[(device, write.table, write.key)].append(write)
            elif ev == "done":
                for tag in event["tags"]:
                    writes[tag].done_index = i
            elif (ev == "sync_ok" and event["pending"] == 0) or (
                ev == "detach" and event["detached"]
            ):
                for write in writes.values():
                    pending = write.done_index is not None and write.commit_index is None
                    if write.device == device and pending:
                        write.commit_index = i
            elif ev == "conflict":
                report.stats[f"conflicts {event['decision']}"] += 1
                where = (event["table"], event["key"])
                if not event["shared"]:
                    report.fail(
                        "conflict", user, f"{device}: a single-writer row conflicted", where
                    )
                if event["decision"] in ("accept_server", "keep_merged"):
                    dropped[(device, *where)].append(i)
            elif ev == "sync_error" and event["error"] == "ProtocolError":
                report.fail("protocol", user, f"{device}: {event['message']}")
            elif ev == "final":
                finished = True
                _compare_device(report, user, device, event["rows"], server)
        report.stats["syncs ok"] += sum(1 for e in events if e["ev"] == "sync_ok")
        report.stats["sync errors"] += sum(1 for e in events if e["ev"] == "sync_error")
        report.stats["background syncs"] += sum(
            1 for e in events if e["ev"] == "sync_ok" and e.get("background")
        )
        if not finished:
            report.fail("quiescence", user, f"{device} did not record its final tables")

    audit = report.audit.get(user, [])
    occurrences: Counter[tuple[str, str, str]] = Counter()  # table, key, tag
    deletes: Counter[Key] = Counter()
    for row in audit:
        if row.tag is None:
            deletes[(row.table, row.key)] += 1
            continue
        occurrences[(row.table, row.key, row.tag)] += 1
        found = writes.get(row.tag)
        if found is None or (found.table, found.key) != (row.table, row.key):
            report.fail(
                "invented", user, f"tag {row.tag} in bundle {row.bundle_seq}", (row.table, row.key)
            )
    for (table, key, tag), count in occurrences.items():
        if count > 1:
            report.fail("duplicated", user, f"write {tag} committed {count} times", (table, key))

    upserted = {(table, key) for table, key, _tag in occurrences}
    for write in writes.values():
        report.stats["writes"] += 1
        if write.commit_index is None:
            continue
        report.stats["committed writes checked"] += 1
        before = write.commit_index
        local = by_key[(write.device, write.table, write.key)]
        superseded = any(write.index < w.index < before for w in local) or any(
            write.index < i < before for i in dropped[(write.device, write.table, write.key)]
        )
        where = (write.table, write.key)
        if write.op == "delete":
            if not superseded and deletes[where] == 0 and where in upserted:
                report.fail(
                    "lost", user, f"committed delete {write.tag} is not on the server", where
                )
            elif write.key not in shared and deletes[where] > 1:
                report.fail("duplicated", user, f"row deleted {deletes[where]} times", where)
        elif not superseded and occurrences[(write.table, write.key, write.tag)] == 0:
            report.fail("lost", user, f"committed write {write.tag} is not on the server", where)

    replayed: dict[Key, str | None] = {}
    for row in audit:
        replayed[(row.table, row.key)] = row.tag
    for table, rows in server.items():
        for key, values in rows.items():  # values[0] is the table's tag column
            if replayed.get((table, key)) != values[0]:
                report.fail(
                    "replay", user, "server row differs from its committed history", (table, key)
                )
    for (table, key), tag in replayed.items():
        if tag is not None and key not in server.get(table, {}):
            report.fail(
                "replay", user, "committed row missing from the server tables", (table, key)
            )

    for (device, table, key), local in by_key.items():
        if key in shared:
            continue
        committed = [w for w in local if w.commit_index is not None]
        start = committed[-1].index if committed else -1
        allowed = {None if w.op == "delete" else w.tag for w in local if w.index >= start}
        if not committed:
            allowed.add(None)
        current = server.get(table, {}).get(key)
        state = None if current is None else current[0]
        if state not in allowed:
            kind = "resurrected" if committed and committed[-1].op == "delete" else "lost"
            report.fail(
                kind,
                user,
                f"{device}'s row ends as {state}, expected one of {allowed}",
                (table, key),
            )


def _compare_device(report: Report, user: str, device: str, rows: Rows, server: Rows) -> None:
    for table in server:
        local = rows.get(table, {})
        for key in sorted(set(local) | set(server[table])):
            if local.get(key) != server[table].get(key):
                report.fail(
                    "diverged",
                    user,
                    f"{device} has {local.get(key)}, the server {server[table].get(key)}",
                    (table, key),
                    device,
                )


def _checkpoint_events(events: list[Event]) -> list[str]:
    """A device's attaches, detaches and the syncs whose pull applied something."""
    shown = []
    for event in events:
        moved = event["ev"] == "sync_ok" and event["pull"] != "already_at_target"
        if moved or event["ev"] in ("attach", "detach"):
            brief = {k: v for k, v in event.items() if k not in ("rows", "conflicts", "device")}
            shown.append("    " + json.dumps(brief))
    return shown
