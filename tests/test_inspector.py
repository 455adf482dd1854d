"""The sync inspector over HTTP against a real server: off without `inspector_token`, refuses
every request without its credential, signs in with an HttpOnly session cookie, shows the sync
state, and costs the same bounded number of statements on a large database as on a small one.
(tests/test_inspector_browser.py loads it in a real browser.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from inspector_support import INSPECTOR_TOKEN, State, open_watch, populate, start_inspected_server
from oversync_server.inspector.data import USERS_PAGE
from serverproc import ServerProcess


@pytest.fixture
def inspected(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_inspected_server(database_url, tmp_path)
    try:
        yield process
    finally:
        process.stop()


def _bearer(token: str = INSPECTOR_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _statements(page: str) -> int:
    found = re.search(r"(\d+) bounded statements", page)
    assert found, page[-500:]
    return int(found.group(1))


def test_off_without_a_token(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base_url}/inspector").status_code == 404
    assert httpx.get(f"{server.base_url}/inspector/login").status_code == 404


def test_refuses_without_the_credential(inspected: ServerProcess) -> None:
    populate(inspected)
    url = f"{inspected.base_url}/inspector"
    attempts = {
        "nothing": {},
        "a wrong token": _bearer("not-the-token"),
        "a sync user's JWT": _bearer(inspected.token("ada")),
        "a forged cookie": {"Cookie": "oversync_inspector=99999999999.00ff"},
    }
    for what, headers in attempts.items():
        answer = httpx.get(url, headers=headers)
        assert answer.status_code == 401, what
        assert 'name="token"' in answer.text and "ada" not in answer.text, what
    wrong = httpx.post(f"{url}/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401 and "not the inspector token" in wrong.text
    assert "set-cookie" not in wrong.headers


def test_sign_in_sets_an_http_only_cookie_and_sign_out_forgets_it(inspected: ServerProcess) -> None:
    with httpx.Client(base_url=inspected.base_url, follow_redirects=False) as browser:
        signed_in = browser.post("/inspector/login", data={"token": INSPECTOR_TOKEN})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/inspector"
        cookie = signed_in.headers["set-cookie"].lower()
        for attribute in ("httponly", "samesite=strict", "path=/inspector"):
            assert attribute in cookie, cookie
        page = browser.get("/inspector")
        assert page.status_code == 200 and "sync inspector" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        browser.post("/inspector/logout")
        assert browser.get("/inspector").status_code == 401


def test_shows_the_sync_state(inspected: ServerProcess) -> None:
    state: State = populate(inspected)
    url = f"{inspected.base_url}/inspector"
    with open_watch(inspected, "ada", "dev-a"):
        page = httpx.get(url, headers=_bearer()).text
    sections = dict(re.findall(r'<section id="([a-z-]+)">(.*?)</section>', page, re.S))
    assert "ada" in sections["users"] and "bob" in sections["users"]
    assert "initialized" in sections["users"]
    assert "dev-a" in sections["sources"] and "dev-b" in sections["sources"]
    assert "bundle 3" in sections["bundles"] and "8 rows" in sections["bundles"]
    assert "Ada-0" in sections["bundles"] and "3 more rows" in sections["bundles"]
    assert state.push_id in sections["push-sessions"] and "0 / 3" in sections["push-sessions"]
    assert state.snapshot_id in sections["snapshot-sessions"]
    # 3 bundles with 2 retained: ada's floor is 1, bob's 0
    assert re.search(r"<td>ada</td><td>1</td><td>3</td><td>2</td>", sections["retention"])
    assert re.search(r"<td>ada</td><td>1</td>", sections["watch"]), sections["watch"]
    assert "business.users" in sections["tables"]
    assert "watch streams (this process)" in sections["figures"]
    # the Prometheus counters: 4 push commits of 11 rows
    figure = '<div class="figure"><div class="value">{}</div><div class="label">{}</div></div>'
    assert figure.format(4, "push commits") in sections["figures"], sections["figures"]
    assert figure.format(11, "rows committed by push") in sections["figures"]

    one = httpx.get(url, params={"user": "ada", "bundle": 3}, headers=_bearer()).text
    assert all(name in one for name in state.names) and "bob" not in one.split('id="bundles"')[1]
    unknown = httpx.get(url, params={"user": "nobody"}, headers=_bearer())
    assert unknown.status_code == 200 and "No such user." in unknown.text
    bad = httpx.get(url, params={"users_after": "-1"}, headers=_bearer())
    assert bad.status_code == 400


def test_escapes_what_it_shows(inspected: ServerProcess) -> None:
    from protocol_helpers import attach, insert_user, push_rows

    with inspected.client("ada") as client:
        attach(client, "dev-<b>")
        push_rows(client, "dev-<b>", 1, [insert_user("<script>alert(1)</script>")])
    page = httpx.get(f"{inspected.base_url}/inspector", headers=_bearer()).text
    assert "<script>" not in page and "dev-&lt;b&gt;" in page


_BULK = """
INSERT INTO sync.user_state (user_id, next_bundle_seq)
SELECT 'bulk-' || lpad(g::text, 4, '0'), 4 FROM generate_series(1, {users}) AS g;
INSERT INTO sync.scope_state (user_pk, state_code, initialized_at, initialized_by_source_id)
SELECT user_pk, 2, now(), 'dev-bulk' FROM sync.user_state WHERE user_id LIKE 'bulk-%';
INSERT INTO sync.source_state (user_pk, source_id, state, max_committed_source_bundle_id)
SELECT user_pk, 'dev-' || s, 'active', 3 FROM sync.user_state, generate_series(1, 8) AS s
WHERE user_id LIKE 'bulk-%';
INSERT INTO sync.bundle_log (user_pk, bundle_seq, source_id, source_bundle_id, row_count,
                             byte_count, bundle_hash)
SELECT user_pk, b, 'dev-1', b, {rows}, 100, '\\x00'::bytea
FROM sync.user_state, generate_series(1, 3) AS b WHERE user_id LIKE 'bulk-%';
INSERT INTO sync.bundle_rows (user_pk, bundle_seq, row_ordinal, table_id, key_bytes, op_code)
SELECT l.user_pk, l.bundle_seq, r, (SELECT min(table_id) FROM sync.table_catalog),
       uuid_send(gen_random_uuid()), 3
FROM sync.bundle_log l, generate_series(1, {rows}) AS r WHERE l.source_id = 'dev-1';
"""


async def _bulk(database_url: str, users: int, rows: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(_BULK.format(users=int(users), rows=int(rows)))
    finally:
        await conn.close()


async def test_costs_bounded_statements_on_a_large_database(
    inspected: ServerProcess, database_url: str
) -> None:
    url = f"{inspected.base_url}/inspector"
    populate(inspected)  # two users: every section has something to read
    async with httpx.AsyncClient(headers=_bearer(), timeout=30) as http:
        small = (await http.get(url)).text
        await _bulk(database_url, users=300, rows=250)
        large = (await http.get(url)).text
        assert _statements(large) == _statements(small)
        users = re.search(r'<section id="users">(.*?)</section>', large, re.S)
        assert users is not None
        assert users.group(1).count("<tr>") == USERS_PAGE + 1  # the header row and one page
        last, first_of_next = f"bulk-{USERS_PAGE - 2:04}", f"bulk-{USERS_PAGE - 1:04}"  # ada, bob
        assert "users_after=" in users.group(1) and last in users.group(1)
        assert first_of_next not in users.group(1)
        assert len(large) < 400_000  # 300 users x 3 bundles x 250 rows are not on the page
        following = (await http.get(url, params={"users_after": _last_pk(large)})).text
        listed = following.split('id="sources"')[0]
        assert first_of_next in listed and last not in listed
        detail = (await http.get(url, params={"user": "bulk-0001", "bundle": 2})).text
        assert detail.count('class="op-DELETE"') == 100 and "rows_after=100" in detail
        rest = await http.get(url, params={"user": "bulk-0001", "bundle": 2, "rows_after": 200})
        assert rest.text.count('class="op-DELETE"') == 50 and "rows_after=" not in rest.text
        assert _statements(detail) == _statements(small)


def _last_pk(page: str) -> str:
    found = re.search(r"users_after=(\d+)", page)
    assert found
    return found.group(1)
