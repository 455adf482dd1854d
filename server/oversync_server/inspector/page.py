"""The inspector's HTML: server-rendered, no script, every value escaped (`html.escape`)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode

from oversync_server.inspector.data import Inspection, Query, when

__all__ = ["inspector_page", "login_page"]

_SHELL = Template((Path(__file__).parent / "templates" / "page.html").read_text(encoding="utf-8"))


def h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _shell(title: str, body: str) -> str:
    return _SHELL.substitute(title=h(title), body=body)


def _link(base: str, text: str, **params: object) -> str:
    query = urlencode({key: value for key, value in params.items() if value is not None})
    return f'<a href="{h(base + ("?" + query if query else ""))}">{h(text)}</a>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table of already-escaped cells (each cell may carry its own `<td ...>` attributes)."""
    body = "".join(
        "<tr>"
        + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row)
        + "</tr>"
        for row in rows
    )
    if not body:
        return f'<p class="muted">{h(empty)}</p>'
    head = "".join(f"<th>{h(name)}</th>" for name in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _section(anchor: str, title: str, content: str) -> str:
    return f'<section id="{anchor}"><h2>{h(title)}</h2>{content}</section>'


def login_page(base: str, app_name: str, *, failed: bool = False) -> str:
    error = '<p class="error">That is not the inspector token.</p>' if failed else ""
    form = (
        f'<form class="login" method="post" action="{h(base)}/login">'
        f"<h2>{h(app_name)} sync inspector</h2>{error}"
        '<label for="token">Inspector token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
    )
    return _shell("Sign in: sync inspector", form)


def _figures(inspection: Inspection) -> str:
    cells = "".join(
        f'<div class="figure"><div class="value">{h(value)}</div>'
        f'<div class="label">{h(label)}</div></div>'
        for label, value in inspection.figures
    )
    return f'<div class="figures">{cells}</div>'


def _users(base: str, inspection: Inspection, query: Query) -> str:
    rows = []
    for user in inspection.users:
        scope = user["scope"]
        detail = {
            "initialized": f"by {user['initialized_by_source_id']} at {when(user['initialized_at'])}",
            "initializing": f"lease of {user['initializer_source_id']} until "
            f"{when(user['lease_expires_at'])}",
        }.get(scope, "")
        rows.append(
            [
                _link(base, user["user_id"], user=user["user_id"]),
                f'<td class="state-{h(scope)}">{h(scope)}</td>',
                h(detail),
                h(user["latest"]),
                h(user["floor"]),
                h(user["sources"]),
            ]
        )
    table = _table(
        ["user", "scope", "", "latest bundle", "retained floor", "sources"],
        rows,
        "No such user." if query.user_id else "No users yet.",
    )
    more = ""
    if inspection.next_users_after is not None:
        more = (
            '<p class="more">'
            + _link(base, "next users →", users_after=inspection.next_users_after)
            + "</p>"
        )
    return table + more


def _sources(inspection: Inspection) -> str:
    rows = [
        [
            h(source["user_id"]),
            f'<td class="mono">{h(source["source_id"])}</td>',
            h(source["state"]),
            h(source["max_committed_source_bundle_id"]),
            h(source["replaced_by_source_id"]),
            h(source["retirement_reason"]),
        ]
        for source in inspection.sources
    ]
    headers = ["user", "source", "state", "last source bundle", "replaced by", "reason"]
    return _table(headers, rows, "No sources.")


def _bundle_rows(rows: list[dict[str, Any]]) -> str:
    return _table(
        ["#", "table", "key", "op", "payload"],
        (
            [
                h(row["row_ordinal"]),
                h(f"{row['schema_name']}.{row['table_name']}"),
                f'<td class="mono">{h(row["sync_key_column"])}={h(row["key"])}</td>',
                f'<td class="op-{h(row["op"])}">{h(row["op"])}</td>',
                f'<td class="payload mono">{h(row["payload"])}</td>',
            ]
            for row in rows
        ),
        "No rows.",
    )


def _bundles(base: str, inspection: Inspection, query: Query) -> str:
    if not inspection.bundles:
        return '<p class="muted">No bundles retained.</p>'
    parts = []
    for bundle in inspection.bundles:
        key = (bundle["user_pk"], bundle["bundle_seq"])
        rows = inspection.rows.get(key, [])
        title = _link(
            base,
            f"bundle {bundle['bundle_seq']}",
            user=bundle["user_id"],
            bundle=bundle["bundle_seq"],
        )
        parts.append(
            f'<div class="bundle"><h3>{title} · {h(bundle["user_id"])} · '
            f"<code>{h(bundle['source_id'])}</code> #{h(bundle['source_bundle_id'])} · "
            f"{h(_count(bundle['row_count'], 'row'))}, {h(bundle['byte_count'])} bytes · "
            f'{h(when(bundle["committed_at"]))} · <span class="muted mono">'
            f"{h(bundle['bundle_hash'][:16])}…</span></h3>{_bundle_rows(rows)}"
        )
        shown = rows[-1]["row_ordinal"] if rows else 0
        if query.bundle_seq is not None and inspection.next_rows_after is not None:
            parts.append(
                '<p class="more">'
                + _link(
                    base,
                    "next rows →",
                    user=bundle["user_id"],
                    bundle=bundle["bundle_seq"],
                    rows_after=inspection.next_rows_after,
                )
                + "</p>"
            )
        elif query.bundle_seq is None and bundle["row_count"] > shown:
            parts.append(
                f'<p class="more muted">{h(bundle["row_count"] - shown)} more rows: '
                + _link(base, "all rows", user=bundle["user_id"], bundle=bundle["bundle_seq"])
                + "</p>"
            )
        parts.append("</div>")
    return "".join(parts)


def _expiry(session: dict[str, Any]) -> str:
    css = ' class="expired"' if session["expired"] else ""
    label = " (expired, awaiting the janitor)" if session["expired"] else ""
    return f"<td{css}>{h(when(session['expires_at']))}{h(label)}</td>"


def _push_sessions(inspection: Inspection) -> str:
    rows = [
        [
            f'<td class="mono">{h(s["push_id"])}</td>',
            h(s["user_id"]),
            f'<td class="mono">{h(s["source_id"])}</td>',
            h(s["source_bundle_id"]),
            h(f"{s['next_expected_row_ordinal']} / {s['planned_row_count']}"),
            _expiry(s),
        ]
        for s in inspection.push_sessions
    ]
    headers = ["push_id", "user", "source", "source bundle", "staged / planned rows", "expires"]
    return _table(headers, rows, "No open push sessions.")


def _snapshot_sessions(inspection: Inspection) -> str:
    rows = [
        [
            f'<td class="mono">{h(s["snapshot_id"])}</td>',
            h(s["user_id"]),
            h(s["snapshot_bundle_seq"]),
            h(s["row_count"]),
            h(s["byte_count"]),
            _expiry(s),
        ]
        for s in inspection.snapshot_sessions
    ]
    headers = ["snapshot_id", "user", "at bundle", "rows", "bytes", "expires"]
    return _table(headers, rows, "No open snapshot sessions.")


def _retention(inspection: Inspection) -> str:
    settings = _table(["setting", "value"], ([h(k), h(v)] for k, v in inspection.retention), "")
    floors = _table(
        ["user", "retained floor", "latest bundle", "bundles retained"],
        (
            [h(u["user_id"]), h(u["floor"]), h(u["latest"]), h(u["latest"] - u["floor"])]
            for u in inspection.users
        ),
        "No users.",
    )
    return settings + "<h3>Floors of the users on this page</h3>" + floors


def _watchers(inspection: Inspection) -> str:
    note = '<p class="muted">Streams open on this server process only.</p>'
    rows = ([h(user_id), h(count)] for user_id, count in inspection.watchers)
    return note + _table(["user", "open streams"], rows, "No watch subscribers.")


def _tables(inspection: Inspection) -> str:
    rows = ([h(t["table_id"]), h(t["name"]), h(t["key"])] for t in inspection.tables)
    return _table(["table_id", "table", "sync key"], rows, "No registered tables.")


SECTIONS = (
    ("figures", "At a glance"),
    ("users", "Users and scopes"),
    ("sources", "Sources"),
    ("bundles", "Recent bundles"),
    ("push-sessions", "Open push sessions"),
    ("snapshot-sessions", "Open snapshot sessions"),
    ("retention", "Retention"),
    ("watch", "Watch subscribers"),
    ("tables", "Registered tables"),
)


def inspector_page(base: str, app_name: str, inspection: Inspection, query: Query) -> str:
    content = {
        "figures": _figures(inspection),
        "users": _users(base, inspection, query),
        "sources": _sources(inspection),
        "bundles": _bundles(base, inspection, query),
        "push-sessions": _push_sessions(inspection),
        "snapshot-sessions": _snapshot_sessions(inspection),
        "retention": _retention(inspection),
        "watch": _watchers(inspection),
        "tables": _tables(inspection),
    }
    nav = "".join(f'<a href="#{anchor}">{h(title)}</a>' for anchor, title in SECTIONS)
    focus = ""
    if query.user_id is not None:
        focus = f" · user <code>{h(query.user_id)}</code> · {_link(base, 'all users')}"
    header = (
        f"<header><h1>{h(app_name)} sync inspector{focus}</h1><nav>{nav}</nav>"
        f'<form method="post" action="{h(base)}/logout"><button type="submit">Sign out</button>'
        "</form></header>"
    )
    sections = "".join(_section(a, t, content[a]) for a, t in SECTIONS)
    footer = (
        f'<p class="muted" id="cost">Read-only; {inspection.queries} bounded statements'
        " (at most) for this page.</p>"
    )
    return _shell(f"{app_name} sync inspector", f"{header}<main>{sections}{footer}</main>")
