"""The documentation's snippets, run as a reader would run them (`docs_snippets`).

The quickstart runs from its first command on a fresh database, with the shell starting in the
repository (as after a clone). Every other page with runnable blocks starts where the quickstart
leaves a reader: the notes tables created, `notes.sql` and `notes.yaml` in the shell's folder,
a server serving them at `OVERSYNC_URL`, and `DATABASE_URL` and `OVERSYNC_JWT_SECRET` exported.
The READMEs (`docs_snippets.READMES`) run against a server of the example business schema, the
one `make serve` serves, with their `http://127.0.0.1:8080` pointed at it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from docs_snippets import DOCS_DIR, READMES, REPO_ROOT, PageRun, collect, iter_runnable, pages
from oversync_server.localpg import (
    create_database_async,
    drop_database_async,
    find_pg_bindir,
    free_port,
    make_tempdir,
)
from serverproc import JWT_SECRET, ServerProcess

QUICKSTART = DOCS_DIR / "quickstart.md"


def _runnable(page: Path) -> bool:
    try:
        return any(iter_runnable(collect(page)))
    except AssertionError:  # test_every_block_has_a_directive reports it
        return False


RUNNABLE = [page for page in pages() if page != QUICKSTART and _runnable(page)]


@pytest.fixture
def reader_env() -> Iterator[dict[str, str]]:
    """A fresh terminal's environment: no oversync or database settings, this Python's bin
    folder first on PATH, psql and curl available, temporary files (`mktemp -d`) in a folder
    of their own that the local PostgreSQL's user can traverse, removed afterwards."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OVERSYNC_", "PYTEST_")) and name != "DATABASE_URL"
    }
    path = [str(Path(sys.executable).parent), env.get("PATH", "")]
    if shutil.which("psql", path=os.pathsep.join(path)) is None:
        bindir = find_pg_bindir()
        if bindir is not None:
            path.insert(1, str(bindir))
    env["PATH"] = os.pathsep.join(path)
    for tool in ("psql", "curl"):
        if shutil.which(tool, path=env["PATH"]) is None:
            pytest.fail(f"the documentation's commands need {tool}, which is not installed")
    temporary = make_tempdir("oversync-docs-")
    env["TMPDIR"] = str(temporary)
    try:
        yield env
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def report(run: PageRun) -> None:
    total = sum(seconds for _, seconds in run.results)
    shown = run.page.relative_to(REPO_ROOT) if run.page.is_relative_to(REPO_ROOT) else run.page
    print(f"\n{shown}: {len(run.results)} blocks in {total:.1f} s")
    for block, seconds in run.results:
        print(f"  {block.where:<40} {block.kind:<7} {seconds:6.2f} s")


def test_every_block_has_a_directive() -> None:
    """Every fenced block of every page and README says how it runs, or why it does not."""
    illustrative = []
    for page in [*pages(), *READMES]:
        illustrative += [block for block in collect(page) if block.kind == "illustrative"]
    print("\nillustrative blocks:")
    for block in illustrative:
        print(f"  {block.where}: {' '.join(block.options)}")


def test_quickstart(database_url: str, tmp_path: Path, reader_env: dict[str, str]) -> None:
    port = free_port()
    run = PageRun(
        QUICKSTART,
        workdir=tmp_path,
        env=reader_env,
        overrides={
            "DATABASE_URL": database_url,
            "OVERSYNC_PORT": str(port),
            "OVERSYNC_URL": f"http://127.0.0.1:{port}",
        },
        cwd=REPO_ROOT,
    )
    started = time.monotonic()
    run.run()
    report(run)
    print(f"the whole quickstart: {time.monotonic() - started:.1f} s")


@pytest.fixture
def notes_server(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The state the quickstart leaves: its files, tables and a server; the shell variables."""
    files = {block.options[0]: block.text for block in collect(QUICKSTART) if block.kind == "file"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")

    async def create_tables() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(files["notes.sql"])
        finally:
            await connection.close()

    import asyncio

    asyncio.run(create_tables())
    server = ServerProcess(database_url, config=tmp_path / "notes.yaml").start(tmp_path)
    try:
        yield {
            "DATABASE_URL": database_url,
            "OVERSYNC_JWT_SECRET": JWT_SECRET,
            "OVERSYNC_URL": server.base_url,
        }
    finally:
        server.stop()


@pytest_asyncio.fixture
async def scratch_database(pg_cluster: str) -> AsyncIterator[str]:
    """A second empty database, for a page that starts a server of its own."""
    name = f"t_{uuid.uuid4().hex}"
    dsn = await create_database_async(pg_cluster, name)
    try:
        yield dsn
    finally:
        await drop_database_async(pg_cluster, name, force=True)


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: str(page.relative_to(DOCS_DIR)))
def test_page(
    page: Path,
    notes_server: dict[str, str],
    scratch_database: str,
    tmp_path: Path,
    reader_env: dict[str, str],
) -> None:
    run = PageRun(
        page,
        workdir=tmp_path,
        env={**reader_env, **notes_server},
        # what `sh env` blocks set for a page's own server: a free port, an empty database
        overrides={"PORT": str(free_port()), "CONFORMANCE_DATABASE_URL": scratch_database},
    )
    run.run()
    report(run)


# READMEs whose examples create files run in an empty folder; the others in the checkout, as
# their paths (`.venv/bin/...`, `conformance/sessions`, `examples/...`) say
README_IN_EMPTY_FOLDER = {
    REPO_ROOT / "client" / "oversqlite" / "README.md",
    REPO_ROOT / "generated" / "oversync_client" / "README.md",
}
# the conformance README's server is `serve --dev` with the secret `s3cret`, as it says
CONFORMANCE_README = REPO_ROOT / "conformance" / "README.md"


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_readme(
    readme: Path, database_url: str, tmp_path: Path, reader_env: dict[str, str]
) -> None:
    """A README's blocks, run against the example business schema that `make serve` serves: its
    `http://127.0.0.1:8080` is this test's server."""
    dev = readme == CONFORMANCE_README
    secret = "s3cret" if dev else JWT_SECRET
    server = ServerProcess(
        database_url, extra_args=("--dev",) if dev else (), env={"OVERSYNC_JWT_SECRET": secret}
    ).start(tmp_path)
    try:
        run = PageRun(
            readme,
            workdir=tmp_path,
            env={**reader_env, "DATABASE_URL": database_url, "OVERSYNC_JWT_SECRET": secret},
            replacements={"http://127.0.0.1:8080": server.base_url},
            cwd=tmp_path if readme in README_IN_EMPTY_FOLDER else REPO_ROOT,
        )
        run.run()
    finally:
        server.stop()
    report(run)
    assert run.results, f"{readme} has no runnable block"


# ------------------------------------------------------------------ the harness itself

HARNESS_CASES = {
    "wrong output": (
        "<!-- docs: sh -->\n```sh\necho 1\n```\n<!-- docs: output -->\n```text\n2\n```\n",
        "printed",
    ),
    "failing command": ("<!-- docs: sh -->\n```sh\nfalse\necho after\n```\n", "failed"),
    "wrong status": (
        "<!-- docs: sh status=3 -->\n```sh\nexit_with() { return $1; }\nexit_with 2\n```\n",
        "expected 3",
    ),
    "python exception": (
        "<!-- docs: python session -->\n```python\nassert 1 == 2\n```\n",
        "AssertionError",
    ),
    "python session state": (
        "<!-- docs: python session -->\n```python\nx = 41\n```\n"
        "<!-- docs: python session -->\n```python\nprint(x + 1)\n```\n"
        "<!-- docs: output -->\n```text\n41\n```\n",
        "printed",
    ),
    "script": ("<!-- docs: python -->\n```python\nraise SystemExit(4)\n```\n", "exit status 4"),
    "sql": ("<!-- docs: sql -->\n```sql\nSELECT no_such_column;\n```\n", "no_such_column"),
    "no directive": ("```python\nprint(1)\n```\n", "without a <!-- docs"),
}


@pytest.mark.parametrize("case", sorted(HARNESS_CASES))
def test_the_harness_catches(
    case: str, tmp_path: Path, database_url: str, reader_env: dict[str, str]
) -> None:
    """A snippet that fails, asserts something false or prints something else fails the page."""
    text, message = HARNESS_CASES[case]
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    env = {**reader_env, "DATABASE_URL": database_url}
    with pytest.raises(AssertionError, match=re.escape(message)):
        PageRun(page, workdir=tmp_path, env=env).run()


def test_the_harness_passes_state_between_blocks(
    tmp_path: Path, reader_env: dict[str, str]
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        '<!-- docs: sh -->\n```sh\nexport GREETING=hello\ncd "$(mktemp -d)"\n```\n'
        "<!-- docs: file greeting.txt -->\n```text\nsaved\n```\n"
        '<!-- docs: sh -->\n```sh\necho "$GREETING $(cat greeting.txt)"\n```\n'
        "<!-- docs: output -->\n```text\nhello saved\n```\n"
        "<!-- docs: python session -->\n```python\nimport os\nprint(os.environ['GREETING'], open('greeting.txt').read().strip())\n```\n"
        "<!-- docs: output -->\n```text\n...\nhello saved\n```\n",
        encoding="utf-8",
    )
    PageRun(page, workdir=tmp_path, env=reader_env).run()


def test_the_harness_replaces_text(tmp_path: Path, reader_env: dict[str, str]) -> None:
    """`replacements` (a README's `make serve` address) apply to every kind of block."""
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs: sh -->\n```sh\necho http://127.0.0.1:8080/x\n```\n"
        "<!-- docs: output -->\n```text\nhttp://127.0.0.1:9/x\n```\n"
        "<!-- docs: python session -->\n```python\nprint('http://127.0.0.1:8080')\n```\n"
        "<!-- docs: output -->\n```text\nhttp://127.0.0.1:9\n```\n",
        encoding="utf-8",
    )
    run = PageRun(
        page,
        workdir=tmp_path,
        env=reader_env,
        replacements={"http://127.0.0.1:8080": "http://127.0.0.1:9"},
    )
    run.run()
    assert [block.kind for block, _ in run.results] == ["sh", "python"]
