"""The soak's checker on small hand-made histories: it passes a correct one and names each
kind of failure (lost, duplicated, resurrected, invented, diverged) in a broken one."""

from __future__ import annotations

from typing import Any

from soak.checker import AuditRow, Report, check_user
from soak.rows import Rows

K1, K2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def write(tag: str, key: str, op: str = "upsert") -> list[dict[str, Any]]:
    return [
        {"ev": "intent", "tag": tag, "table": "users", "key": key, "op": op},
        {"ev": "done", "tags": [tag]},
    ]


def synced() -> dict[str, Any]:
    return {"ev": "sync_ok", "pending": 0, "pull": "already_at_target"}


def final(rows: Rows) -> dict[str, Any]:
    return {"ev": "final", "rows": rows}


def users(**tags: str) -> Rows:
    return {"users": {key: [tag, "u0d0@soak"] for key, tag in tags.items()}}


def check(events: list[dict[str, Any]], audit: list[AuditRow], server: Rows) -> Report:
    report = Report(histories={"u0d0": events}, audit={"u0": audit})
    check_user(report, "u0", server, shared=set())
    return report


def row(seq: int, key: str, tag: str | None) -> AuditRow:
    return AuditRow(seq, 1, "users", key, "DELETE" if tag is None else "UPDATE", tag)


def kinds(report: Report) -> list[str]:
    return sorted({failure.kind for failure in report.failures})


def test_a_correct_history_passes() -> None:
    events = [*write("a.0.1", K1), synced(), *write("a.0.2", K1), *write("a.0.3", K1), synced()]
    server = users(**{K1: "a.0.3"})
    report = check([*events, final(server)], [row(1, K1, "a.0.1"), row(2, K1, "a.0.3")], server)
    assert report.ok, [f.message for f in report.failures]
    assert report.stats["committed writes checked"] == 3  # a.0.2 was coalesced into a.0.3


def test_a_committed_write_missing_from_the_server_is_lost() -> None:
    events = [*write("a.0.1", K1), synced(), *write("a.0.2", K1), synced()]
    server = users(**{K1: "a.0.1"})
    report = check([*events, final(server)], [row(1, K1, "a.0.1")], server)
    assert kinds(report) == ["lost"]


def test_a_write_committed_twice_is_duplicated() -> None:
    events = [*write("a.0.1", K1), synced()]
    server = users(**{K1: "a.0.1"})
    report = check([*events, final(server)], [row(1, K1, "a.0.1"), row(2, K1, "a.0.1")], server)
    assert kinds(report) == ["duplicated"]


def test_a_deleted_row_that_comes_back_is_resurrected() -> None:
    events = [*write("a.0.1", K1), synced(), *write("a.0.2", K1, "delete"), synced()]
    server = users(**{K1: "a.0.1"})
    audit = [row(1, K1, "a.0.1"), row(2, K1, None), row(3, K1, "a.0.1")]
    report = check([*events, final(server)], audit, server)
    assert "resurrected" in kinds(report)


def test_a_tag_no_device_wrote_is_invented_and_a_device_that_differs_diverged() -> None:
    events = [*write("a.0.1", K1), synced()]
    server = users(**{K1: "a.0.1", K2: "x.0.9"})
    audit = [row(1, K1, "a.0.1"), row(2, K2, "x.0.9")]
    attach = {"ev": "attach", "outcome": "started_empty"}
    report = check([attach, *events, final(users(**{K1: "a.0.1"}))], audit, server)
    assert kinds(report) == ["diverged", "invented"]
    # the explanation shows how the device that diverged moved its checkpoint
    diverged = next(f for f in report.failures if f.kind == "diverged")
    assert '"outcome": "started_empty"' in report.explain(diverged)


def test_a_resolver_that_accepted_the_server_row_explains_a_missing_write() -> None:
    conflict = {"ev": "conflict", "table": "users", "key": K1, "shared": True}
    events = [*write("a.0.1", K1), {**conflict, "decision": "accept_server"}, synced()]
    server = users(**{K1: "b.0.1"})
    report = Report(histories={"u0d0": [*events, final(server)]}, audit={"u0": []})
    report.histories["u0d1"] = [*write("b.0.1", K1), synced(), final(server)]
    report.audit["u0"] = [row(1, K1, "b.0.1")]
    check_user(report, "u0", server, shared={K1})
    assert report.ok, [f.message for f in report.failures]
