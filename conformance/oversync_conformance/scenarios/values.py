"""Value encoding on the wire: the payloads a server serves and the bundle_hash over them.

Payloads are hashed as Go canonical JSON (numbers through float64, HTML characters escaped,
keys sorted by UTF-8 bytes); bytea travels as padded base64. The recorded hashes are literal,
so an implementation whose canonical form or value encoding differs fails on them.
"""

from __future__ import annotations

from oversync_client.api.pull import pull
from oversync_client.api.push import get_committed_bundle_rows
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import chunk, commit, connect_empty, create, insert


@scenario(tags=("push", "values"))
def value_encoding(ctx: ScenarioContext) -> None:
    """Big integers (rounded through float64), doubles (shortest form, exponents), HTML and
    line-separator characters, control characters, non-ASCII, NULLs and bytea (base64, empty
    too) in one bundle: committed rows, pull, and their literal bundle_hash."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    rows = [
        insert(
            "typed_rows", 1, name="html <b>&amp;</b> \u2028\u2029 é 😀", note="line\nbreak\ttab\x01",
            count_value=9007199254740993, enabled_flag=1, rating=6.57111473696007,
            data="AAEC/w==", created_at=None,
        ),
        insert(
            "typed_rows", 2, name="numbers", note=None, count_value=-42, enabled_flag=0,
            rating=1e21, data="", created_at=None,
        ),
        insert(
            "typed_rows", 3, name="small", note="/", count_value=0, enabled_flag=0,
            rating=1.5e-7, data=None, created_at=None,
        ),
        insert("files", 4, name="hello.txt", data="aGVsbG8="),
    ]  # fmt: skip
    push_id = create(phone, 1, len(rows))
    chunk(phone, push_id, 0, rows)
    commit(phone, push_id)
    seq = ctx.capture("bundle_seq", "bundle_seq")
    phone.call(get_committed_bundle_rows.sync_detailed, seq, expect=200, step="committed rows")
    phone.call(pull.sync_detailed, expect=200)


@scenario(tags=("push", "values"))
def server_defaults(ctx: ScenarioContext) -> None:
    """Columns the client leaves out get the table's defaults (timestamps of the commit): the
    committed rows carry the full row, and bundle_hash is the hash of those rows."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push_id = create(phone, 1, 1)
    chunk(phone, push_id, 0, [insert("users", 1, name="Ada", email="ada@example.com")])
    commit(phone, push_id)
    seq = ctx.capture("bundle_seq", "bundle_seq")
    phone.call(get_committed_bundle_rows.sync_detailed, seq, expect=200, step="committed rows")
    phone.call(pull.sync_detailed, expect=200)


@scenario(tags=("push", "errors", "paging"))
def committed_rows_invalid(ctx: ScenarioContext) -> None:
    """Committed-bundle rows: a bundle that does not exist is 404 committed_bundle_not_found;
    bad path or query values are 400 committed_bundle_chunk_invalid; max_rows above the
    limit is capped, not refused."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push_id = create(phone, 1, 1)
    chunk(phone, push_id, 0, [insert("categories", 1, name="inbox", parent_id=None)])
    commit(phone, push_id)
    invalid = (400, "committed_bundle_chunk_invalid")
    rows = get_committed_bundle_rows.sync_detailed
    phone.call(rows, 2, expect=(404, "committed_bundle_not_found"), step="bundle 2")
    phone.call(rows, 0, expect=invalid, step="bundle 0")
    phone.call(rows, 1, max_rows=0, expect=invalid, step="max_rows 0")
    phone.call(rows, 1, after_row_ordinal=-1, expect=invalid, step="negative after_row_ordinal")
    phone.raw(
        "GET", "/sync/committed-bundles/one/rows", expect=invalid, step="bundle_seq not an integer"
    )
    phone.call(rows, 1, max_rows=6000, expect=200, step="max_rows above the limit")
