"""An in-memory sync server speaking the oversync v1 protocol, as an ``httpx.MockTransport``.

It follows protocol.md closely enough to exercise every SDK flow while the real server is being
built: connect state machine, push sessions (already_committed, sequencing, structured
conflicts, initialization leases), committed-bundle row pages (0-based, last-ordinal cursor),
pull with a frozen ceiling and a retention floor, and snapshot sessions (1-based count cursor,
source replacement). The bearer token is the user id. Faults are injected by the client-side
``FaultTransport`` (sdk_helpers), which works for the real server too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from oversync_wire import bundle_hash

FEATURES = [
    "accepted_push_replay_visibility",
    "bundle_change_watch",
    "bundle_pull",
    "bundle_push",
    "capabilities_endpoint",
    "committed_bundle_row_fetch",
    "committed_bundle_visibility",
    "connect_lifecycle",
    "graceful_shutdown",
    "history_pruned_errors",
    "history_pruned_visibility",
    "push_session_chunking",
    "registered_write_rejection_enforced",
    "retained_floor_visibility",
    "retained_window_visibility",
    "scope_initialization_leases",
    "server_checkpoint_tracking",
    "snapshot_chunking",
    "status_endpoint",
    "structured_sync_keys",
]


@dataclass
class UserState:
    scope: str = "uninitialized"
    initializer: str = ""
    initialization_id: str = ""
    bundles: list[dict[str, Any]] = field(default_factory=list)
    live: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    floor: int = 0


# The example schema's ON DELETE CASCADE foreign keys: parent table -> (child table, column).
CASCADES: dict[str, list[tuple[str, str]]] = {
    "teams": [("team_members", "team_id")],
    "files": [("file_reviews", "file_id")],
    "categories": [("categories", "parent_id")],
}


def _error(status: int, code: str, message: str = "", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "message": message or code, **extra})


class FakeServer:
    def __init__(self, schema: str = "business") -> None:
        self.schema = schema
        self.users: dict[str, UserState] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.retry_later_for: set[str] = set()
        # Lets a test change what the server stores (e.g. normalize timestamps like PostgreSQL).
        self.transform: Callable[[str, dict[str, Any]], dict[str, Any]] = lambda t, p: p

    # ------------------------------------------------------------------ plumbing

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def user(self, name: str) -> UserState:
        return self.users.setdefault(name, UserState())

    def handle(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        source = request.headers.get("oversync-source-id", "").strip()
        if not auth.startswith("Bearer ") or not auth[7:]:
            return _error(401, "authentication_failed")
        if not source:
            return _error(400, "invalid_request", "Oversync-Source-ID header is required")
        user = auth[7:]
        path, method = request.url.path, request.method
        query = dict(request.url.params)
        body = json.loads(request.content) if request.content else None
        routes: list[tuple[str, str, str, Callable[..., httpx.Response]]] = [
            ("GET", r"/sync/capabilities", self.capabilities),
            ("POST", r"/sync/connect", self.connect),
            ("POST", r"/sync/push-sessions", self.create_push),
            ("POST", r"/sync/push-sessions/([^/]+)/chunks", self.chunk),
            ("POST", r"/sync/push-sessions/([^/]+)/commit", self.commit),
            ("DELETE", r"/sync/push-sessions/([^/]+)", self.delete_push),
            ("GET", r"/sync/committed-bundles/(\d+)/rows", self.committed_rows),
            ("GET", r"/sync/pull", self.pull),
            ("POST", r"/sync/snapshot-sessions", self.create_snapshot),
            ("GET", r"/sync/snapshot-sessions/([^/]+)", self.snapshot_chunk),
            ("DELETE", r"/sync/snapshot-sessions/([^/]+)", self.delete_snapshot),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                return handler(user, source, *match.groups(), query=query, body=body)
        return _error(404, "not_found")

    # ------------------------------------------------------------------ lifecycle

    def capabilities(self, user: str, source: str, **_: Any) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "protocol_version": "v1",
                "schema_version": 1,
                "features": dict.fromkeys(FEATURES, True),
            },
        )

    def connect(self, user: str, source: str, *, body: Any, **_: Any) -> httpx.Response:
        state = self.user(user)
        pending = bool((body or {}).get("has_local_pending_rows"))
        if state.scope == "initialized":
            return httpx.Response(200, json={"resolution": "remote_authoritative"})
        if state.scope == "initializing" and state.initializer != source:
            return httpx.Response(200, json={"resolution": "retry_later", "retry_after_seconds": 7})
        if user in self.retry_later_for:
            self.retry_later_for.discard(user)
            return httpx.Response(200, json={"resolution": "retry_later", "retry_after_seconds": 3})
        if not pending:
            state.scope, state.initializer = "initialized", source
            return httpx.Response(200, json={"resolution": "initialize_empty"})
        if state.scope != "initializing":
            state.scope, state.initializer = "initializing", source
            state.initialization_id = str(uuid.uuid4())
        return httpx.Response(
            200,
            json={
                "resolution": "initialize_local",
                "initialization_id": state.initialization_id,
                "lease_expires_at": "2030-01-01T00:00:00Z",
            },
        )

    def expire_initialization(self, user: str) -> None:
        state = self.user(user)
        state.scope, state.initializer, state.initialization_id = "uninitialized", "", ""

    # ------------------------------------------------------------------ push

    def _source(self, state: UserState, source: str) -> dict[str, Any]:
        return state.sources.setdefault(source, {"max": 0, "retired_by": None})

    def create_push(self, user: str, source: str, *, body: Any, **_: Any) -> httpx.Response:
        state = self.user(user)
        sbid, planned = body["source_bundle_id"], body["planned_row_count"]
        init_id = body.get("initialization_id", "")
        if sbid <= 0 or planned <= 0:
            return _error(400, "push_session_invalid")
        if state.scope == "uninitialized":
            if init_id:
                return _error(410, "initialization_expired")
            return _error(409, "scope_uninitialized")
        if state.scope == "initializing":
            if not init_id:
                return _error(400, "push_session_invalid", "initialization_id is required")
            if state.initializer != source or init_id != state.initialization_id:
                return _error(409, "initialization_stale")
        elif init_id:
            return _error(400, "push_session_invalid", "initialization_id must be absent")
        for bundle in state.bundles:
            if (
                bundle["source_id"] == source
                and bundle["source_bundle_id"] == sbid
                and bundle["bundle_seq"] > state.floor
            ):
                return httpx.Response(
                    200,
                    json={
                        "status": "already_committed",
                        **{k: bundle[k] for k in ("bundle_seq", "source_id", "source_bundle_id")},
                        "row_count": len(bundle["rows"]),
                        "bundle_hash": bundle["hash"],
                    },
                )
        info = self._source(state, source)
        if info["retired_by"]:
            return _error(
                409, "source_retired", source_id=source, replaced_by_source_id=info["retired_by"]
            )
        expected = info["max"] + 1
        if sbid < expected:
            return _error(409, "history_pruned")
        if sbid > expected:
            return _error(409, "source_sequence_out_of_order")
        for push_id, session in list(self.sessions.items()):
            if (session["user"], session["source"], session["sbid"]) == (user, source, sbid):
                del self.sessions[push_id]
        push_id = str(uuid.uuid4())
        self.sessions[push_id] = {
            "user": user,
            "source": source,
            "sbid": sbid,
            "planned": planned,
            "rows": [],
            "init": init_id,
        }
        return httpx.Response(
            200, json={"push_id": push_id, "status": "staging", "planned_row_count": planned}
        )

    def chunk(self, user: str, source: str, push_id: str, *, body: Any, **_: Any) -> httpx.Response:
        session = self.sessions.get(push_id)
        if session is None or session["user"] != user:
            return _error(404, "push_session_not_found")
        for row in body["rows"]:
            if row["op"] == "DELETE" and "payload" in row:
                return _error(400, "push_chunk_invalid", "DELETE must not include payload")
            if row["op"] != "DELETE" and not isinstance(row.get("payload"), dict):
                return _error(400, "push_chunk_invalid", "payload required")
        if body["start_row_ordinal"] != len(session["rows"]):
            return _error(409, "push_chunk_out_of_order")
        session["rows"].extend(body["rows"])
        return httpx.Response(
            200, json={"push_id": push_id, "next_expected_row_ordinal": len(session["rows"])}
        )

    def commit(self, user: str, source: str, push_id: str, **_: Any) -> httpx.Response:
        session = self.sessions.get(push_id)
        if session is None or session["user"] != user:
            return _error(404, "push_session_not_found")
        state = self.user(user)
        if len(session["rows"]) != session["planned"]:
            return _error(400, "push_commit_invalid")
        if session["init"] and state.scope != "initializing":
            return _error(409, "initialization_stale")
        info = self._source(state, session["source"])
        if info["retired_by"]:
            return _error(409, "source_retired", source_id=session["source"])
        if info["max"] + 1 != session["sbid"]:
            return _error(409, "source_sequence_changed")
        for row in session["rows"]:
            key = (row["table"], next(iter(row["key"].values())))
            version, deleted = state.versions.get(key, (0, False))
            known = key in state.versions
            base = row["base_row_version"]
            if row["op"] == "INSERT":
                ok = (not known and base == 0) or (known and deleted and base == version)
            else:
                ok = known and not deleted and base == version
            if not ok:
                live = state.live.get(key)
                conflict = {
                    "schema": self.schema,
                    "table": row["table"],
                    "key": row["key"],
                    "op": row["op"],
                    "base_row_version": base,
                    "server_row_version": version,
                    "server_row_deleted": deleted,
                    "server_row": live,
                }
                return _error(409, "push_conflict", "conflict", conflict=conflict)
        del self.sessions[push_id]
        bundle = self._commit_rows(state, session["source"], session["sbid"], session["rows"])
        if session["init"]:
            state.scope = "initialized"
        return httpx.Response(
            200,
            json={
                **{k: bundle[k] for k in ("bundle_seq", "source_id", "source_bundle_id")},
                "row_count": len(bundle["rows"]),
                "bundle_hash": bundle["hash"],
            },
        )

    def _commit_rows(
        self, state: UserState, source: str, sbid: int, rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        seq = len(state.bundles) + 1
        committed: list[dict[str, Any]] = []
        emitted: set[tuple[str, str]] = set()

        def emit(table: str, key_value: str, op: str, payload: dict[str, Any] | None) -> None:
            key = (table, key_value)
            if op == "DELETE":
                state.live.pop(key, None)
                state.versions[key] = (seq, True)
            else:
                assert payload is not None
                state.live[key] = payload
                state.versions[key] = (seq, False)
            if key in emitted:  # one row per key and bundle, at its first position
                for row in committed:
                    if (row["table"], row["key"]["id"]) == key:
                        row["op"] = op if op == "DELETE" else row["op"]
                        row.pop("payload", None)
                        if payload is not None:
                            row["payload"] = payload
                return
            emitted.add(key)
            out: dict[str, Any] = {
                "schema": self.schema,
                "table": table,
                "key": {"id": key_value},
                "op": op,
                "row_version": seq,
            }
            if payload is not None:
                out["payload"] = payload
            committed.append(out)
            if op == "DELETE":  # PostgreSQL's ON DELETE CASCADE, captured in firing order
                for child, column in CASCADES.get(table, []):
                    for (t, k), child_row in list(state.live.items()):
                        if t == child and child_row.get(column) == key_value:
                            emit(child, k, "DELETE", None)

        for row in rows:
            key_value = next(iter(row["key"].values()))
            payload = None
            if row["op"] != "DELETE":
                payload = self.transform(row["table"], dict(row["payload"]))
            emit(row["table"], key_value, row["op"], payload)
        bundle = {
            "bundle_seq": seq,
            "source_id": source,
            "source_bundle_id": sbid,
            "rows": committed,
            "hash": bundle_hash(committed)[0],
        }
        state.bundles.append(bundle)
        self._source(state, source)["max"] = sbid
        return bundle

    def server_write(self, user: str, rows: list[dict[str, Any]]) -> int:
        """A server-originated bundle (like another writer); returns its bundle_seq."""
        state = self.user(user)
        if state.scope != "initialized":
            state.scope = "initialized"
        info = self._source(state, "server")
        return int(self._commit_rows(state, "server", info["max"] + 1, rows)["bundle_seq"])

    def delete_push(self, user: str, source: str, push_id: str, **_: Any) -> httpx.Response:
        if self.sessions.pop(push_id, None) is None:
            return _error(404, "push_session_not_found")
        return httpx.Response(204)

    def committed_rows(
        self, user: str, source: str, seq: str, *, query: dict[str, str], **_: Any
    ) -> httpx.Response:
        state, bundle_seq = self.user(user), int(seq)
        if bundle_seq <= state.floor:
            return _error(409, "history_pruned")
        if bundle_seq > len(state.bundles):
            return _error(404, "committed_bundle_not_found")
        bundle = state.bundles[bundle_seq - 1]
        after = int(query["after_row_ordinal"]) if "after_row_ordinal" in query else None
        limit = int(query.get("max_rows", "1000"))
        start = 0 if after is None else after + 1
        rows = bundle["rows"][start : start + limit]
        # the ordinal of the last row sent; with no rows, the cursor given (0 when absent)
        next_ordinal = start + len(rows) - 1 if rows else (after or 0)
        return httpx.Response(
            200,
            json={
                **{k: bundle[k] for k in ("bundle_seq", "source_id", "source_bundle_id")},
                "row_count": len(bundle["rows"]),
                "bundle_hash": bundle["hash"],
                "rows": rows,
                "next_row_ordinal": next_ordinal,
                "has_more": start + len(rows) < len(bundle["rows"]),
            },
        )

    # ------------------------------------------------------------------ pull / snapshot

    def _require_initialized(self, state: UserState) -> httpx.Response | None:
        if state.scope == "uninitialized":
            return _error(409, "scope_uninitialized")
        if state.scope == "initializing":
            return _error(409, "scope_initializing")
        return None

    def pull(self, user: str, source: str, *, query: dict[str, str], **_: Any) -> httpx.Response:
        state = self.user(user)
        refused = self._require_initialized(state)
        if refused:
            return refused
        after = int(query.get("after_bundle_seq", "0"))
        limit = int(query.get("max_bundles", "1000"))
        target = int(query.get("target_bundle_seq", "0"))
        if (after and after <= state.floor) or (target and target <= state.floor):
            return _error(409, "history_pruned")
        stable = target or len(state.bundles)
        if stable and stable <= state.floor:
            return _error(409, "history_pruned")
        chosen = [
            b
            for b in state.bundles
            if after < b["bundle_seq"] <= stable and b["bundle_seq"] > state.floor
        ]
        page = chosen[:limit]
        bundles = [
            {
                **{k: b[k] for k in ("bundle_seq", "source_id", "source_bundle_id", "rows")},
                "row_count": len(b["rows"]),
                "bundle_hash": b["hash"],
            }
            for b in page
        ]
        return httpx.Response(
            200,
            json={"stable_bundle_seq": stable, "bundles": bundles, "has_more": len(chosen) > limit},
        )

    def create_snapshot(self, user: str, source: str, *, body: Any, **_: Any) -> httpx.Response:
        state = self.user(user)
        refused = self._require_initialized(state)
        if refused:
            return refused
        replacement = (body or {}).get("source_replacement")
        if replacement:
            previous, new = replacement["previous_source_id"], replacement["new_source_id"]
            info = self._source(state, previous)
            if info["retired_by"] and info["retired_by"] != new:
                return _error(
                    409,
                    "source_retired",
                    source_id=previous,
                    replaced_by_source_id=info["retired_by"],
                )
            info["retired_by"] = new
            state.sources.setdefault(new, {"max": 0, "retired_by": None})
        rows = [
            {
                "schema": self.schema,
                "table": table,
                "key": {"id": key},
                "row_version": state.versions[(table, key)][0],
                "payload": payload,
            }
            for (table, key), payload in sorted(state.live.items())
        ]
        snapshot_id = str(uuid.uuid4())
        self.snapshots[snapshot_id] = {"user": user, "seq": len(state.bundles), "rows": rows}
        return httpx.Response(
            200,
            json={
                "snapshot_id": snapshot_id,
                "snapshot_bundle_seq": len(state.bundles),
                "row_count": len(rows),
                "expires_at": "2030-01-01T00:00:00Z",
            },
        )

    def snapshot_chunk(
        self, user: str, source: str, snapshot_id: str, *, query: dict[str, str], **_: Any
    ) -> httpx.Response:
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None or snapshot["user"] != user:
            return _error(404, "snapshot_session_not_found")
        after, limit = int(query.get("after_row_ordinal", "0")), int(query.get("max_rows", "1000"))
        rows = snapshot["rows"][after : after + limit]
        return httpx.Response(
            200,
            json={
                "snapshot_id": snapshot_id,
                "snapshot_bundle_seq": snapshot["seq"],
                "rows": rows,
                "next_row_ordinal": after + len(rows),
                "has_more": after + len(rows) < len(snapshot["rows"]),
            },
        )

    def delete_snapshot(self, user: str, source: str, snapshot_id: str, **_: Any) -> httpx.Response:
        if self.snapshots.pop(snapshot_id, None) is None:
            return _error(404, "snapshot_session_not_found")
        return httpx.Response(204)
