"""Extract the fenced code blocks of the documentation and run them as a reader would.

Every fenced block of a page is preceded by a directive, an HTML comment on the line just above
the fence (invisible on the rendered page), or the page fails `collect` (`mermaid` diagrams
excepted):

    <!-- docs: sh -->              run in the page's shell (one bash for the whole page, like one
                                   terminal: `cd`, `export` and background jobs carry over; the
                                   block fails on its first failing command)
    <!-- docs: sh status=3 -->     the same, but the block's last command must exit with 3
    <!-- docs: sh env -->          run, then the harness re-exports its own values for the
                                   machine-specific variables (database URL, port, URL)
    <!-- docs: sh repo -->         run in the repository's checkout (in a subshell)
    <!-- docs: sql -->             run through `psql -v ON_ERROR_STOP=1 "$DATABASE_URL"`
    <!-- docs: file NAME -->       saved as NAME in the shell's current folder
    <!-- docs: python -->          a complete script: run with `python` in that folder
    <!-- docs: python session -->  pasted into the page's one interactive `python` session
                                   (`code.InteractiveConsole`, line by line, as the REPL reads a
                                   paste), so state carries over between blocks
    <!-- docs: output -->          what the previous block printed, exactly; a line `...` matches
                                   any number of lines
    <!-- docs: illustrative REASON --> not run, with the reason (a fragment, another machine)

The READMEs listed in `READMES` follow the same rules. `PageRun.run` runs the blocks in order and raises `SnippetError` naming the page, line and output
of the first block that fails or prints something else than its `output` block says. The child
side of the Python session is this file run as a script (`--repl`).
"""

from __future__ import annotations

import code
import dataclasses
import io
import itertools
import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextlib import redirect_stderr, redirect_stdout, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS_DIR = REPO_ROOT / "docs"
KINDS = ("sh", "sql", "file", "python", "output", "illustrative")
BLOCK_TIMEOUT = 180.0

_DIRECTIVE = re.compile(r"^\s*<!--\s*docs:\s*(?P<body>.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)(?P<rest>.*)$")


class SnippetError(AssertionError):
    """A block failed, printed something unexpected, or is not annotated."""


@dataclass(frozen=True)
class Block:
    """One fenced block and the directive above it."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    kind: str
    options: tuple[str, ...]
    text: str

    @property
    def where(self) -> str:
        return f"{_shown(self.page)}:{self.line}"

    def option(self, name: str) -> str | None:
        """`name=value` options' value (None when absent); bare words give ''."""
        for item in self.options:
            key, _, value = item.partition("=")
            if key == name:
                return value
        return None


def _shown(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT)) if page.is_relative_to(REPO_ROOT) else str(page)


def collect(page: Path) -> list[Block]:
    """The page's blocks in order; `SnippetError` for a fence without a directive."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, lang = match["indent"], match["fence"], match["lang"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines) and not (
            lines[index].strip().startswith(fence) and lines[index].strip().strip(fence[0]) == ""
        ):
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1  # the closing fence
        directive = _DIRECTIVE.match(lines[start - 1]) if start else None
        where = f"{_shown(page)}:{start + 1}"
        if directive is None:
            if lang == "mermaid":
                continue
            raise SnippetError(
                f"{where}: a ```{lang} block without a <!-- docs: ... --> directive above it"
            )
        try:
            words = shlex.split(directive["body"])
        except ValueError as error:  # e.g. an apostrophe in a reason
            raise SnippetError(f"{where}: the directive cannot be read: {error}") from None
        kind, options = words[0], tuple(words[1:])
        if kind not in KINDS:
            raise SnippetError(f"{where}: unknown directive {kind!r} (one of {KINDS})")
        if kind == "illustrative" and not options:
            raise SnippetError(f"{where}: an illustrative block needs a reason")
        if kind == "file" and len(options) != 1:
            raise SnippetError(f"{where}: `file` takes one name")
        blocks.append(Block(page, start + 1, lang, kind, options, "\n".join(body) + "\n"))
    for previous, block in itertools.pairwise(blocks):
        if block.kind == "output" and previous.kind not in ("sh", "sql", "python"):
            raise SnippetError(f"{block.where}: an output block must follow a run block")
    if blocks and blocks[0].kind == "output":
        raise SnippetError(f"{blocks[0].where}: an output block must follow a run block")
    return blocks


# Pages kept by the schema-change work (issue 12), written before this harness: not annotated.
UNANNOTATED = frozenset({"deviations.md", "schema-changes.md"})


def pages() -> list[Path]:
    """The site's pages whose blocks the harness owns."""
    return sorted(
        path
        for path in DOCS_DIR.rglob("*.md")
        if "hooks" not in path.parts and path.relative_to(DOCS_DIR).as_posix() not in UNANNOTATED
    )


# The READMEs whose blocks the harness owns too (`tests/test_docs.py` runs them against a server
# of the example business schema, which is what `make serve` serves).
READMES = (
    REPO_ROOT / "README.md",
    REPO_ROOT / "client" / "oversqlite" / "README.md",
    REPO_ROOT / "conformance" / "README.md",
    REPO_ROOT / "generated" / "oversync_client" / "README.md",
    REPO_ROOT / "server" / "oversync_server" / "api" / "README.md",
)


def output_matches(expected: str, actual: str) -> bool:
    """Line by line after trimming trailing blanks; a `...` line matches any lines."""

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.strip("\n").splitlines()]

    want, got = lines(expected), lines(actual)

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and want[i] == got[j] and match(i + 1, j + 1)

    return match(0, 0)


# ------------------------------------------------------------------------------ the shell


class Shell:
    """One bash for a page: blocks are sourced into it, so state carries over like a terminal."""

    def __init__(self, cwd: Path, env: Mapping[str, str], scratch: Path) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its process group holds everything the page started
        )
        self.scratch = scratch  # the harness's own files (blocks, scripts), never in `cwd`
        self.scratch.mkdir(exist_ok=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.count = 0
        self._send("set -e\n")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.lines.put(raw.decode("utf-8", "replace"))
        self.lines.put(None)

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def run(self, script: str, *, expect_status: int | None = None) -> tuple[int, str]:
        """Source `script`; its exit status and everything it printed."""
        self.count += 1
        path = self.scratch / f"block-{self.count}.sh"
        path.write_text(script, encoding="utf-8")
        marker = f"__DOCS_DONE_{uuid.uuid4().hex}__"
        if expect_status is None:
            self._send(f"source {shlex.quote(str(path))}\necho; echo {marker} $?\n")
        else:
            self._send(
                f"set +e\nsource {shlex.quote(str(path))}\n"
                f"__docs_status=$?\nset -e\necho; echo {marker} $__docs_status\n"
            )
        output: list[str] = []
        deadline = time.monotonic() + BLOCK_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise SnippetError(
                    f"timed out after {BLOCK_TIMEOUT:.0f} s; output so far:\n{''.join(output)}"
                ) from None
            if line is None:  # the shell exited: a command failed under `set -e`
                status = self.process.wait()
                return status or 1, "".join(output)
            if line.startswith(marker):
                text = "".join(output)
                return int(line.split()[1]), text[:-1] if text.endswith("\n") else text
            output.append(line)

    def environment(self) -> dict[str, str]:
        """The shell's exported variables now (what a program started from it would get)."""
        target = self.scratch / "env"
        status, output = self.run(f"env -0 > {shlex.quote(str(target))}\n")
        if status:
            raise SnippetError(f"cannot read the shell's environment: {output}")
        pairs = target.read_bytes().decode().split("\0")
        return dict(pair.split("=", 1) for pair in pairs if "=" in pair)

    def close(self) -> None:
        """End the shell and everything started from it (its process group)."""
        with suppress(ProcessLookupError, OSError):
            os.killpg(self.process.pid, 15)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, OSError):
                os.killpg(self.process.pid, 9)
            self.process.wait()
        deadline = time.monotonic() + 20  # background jobs (a server) drain after the shell
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)


# ------------------------------------------------------------------------------ python session


class PythonSession:
    """An interactive `python` (this file with `--repl`), fed block by block."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", str(Path(__file__).resolve()), "--repl"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env),
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.answers.put(raw.decode())
        self.answers.put(None)

    def run(self, source: str) -> tuple[bool, str]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"source": source}) + "\n").encode())
        self.process.stdin.flush()
        try:
            answer = self.answers.get(timeout=BLOCK_TIMEOUT)
        except queue.Empty:
            raise SnippetError(
                f"the python session timed out after {BLOCK_TIMEOUT:.0f} s"
            ) from None
        if answer is None:
            raise SnippetError("the python session exited")
        result = json.loads(answer)
        return bool(result["ok"]), str(result["output"])

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with suppress(OSError):
                self.process.stdin.close()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def repl_main() -> None:
    """Child side: read {"source"} lines, push them into one console, answer {"ok", "output"}."""
    answer_to = sys.stdout
    console = _Console()
    for request in sys.stdin:
        source = json.loads(request)["source"]
        buffer = io.StringIO()
        console.failed = False
        with redirect_stdout(buffer), redirect_stderr(buffer):
            more = False
            for line in source.splitlines():
                more = console.push(line)
            if more:
                console.push("")  # the Enter that ends a pasted compound statement
        answer_to.write(json.dumps({"ok": not console.failed, "output": buffer.getvalue()}) + "\n")
        answer_to.flush()


class _Console(code.InteractiveConsole):
    failed = False

    def showtraceback(self) -> None:
        self.failed = True
        sys.stderr.write("".join(traceback.format_exception(*sys.exc_info())))

    def showsyntaxerror(self, filename: str | None = None, **kwargs: object) -> None:
        self.failed = True
        super().showsyntaxerror(filename)


# ------------------------------------------------------------------------------ a page


@dataclass
class PageRun:
    """Runs one page's blocks in order in a work folder; `results` records what ran."""

    page: Path
    workdir: Path
    env: dict[str, str]
    overrides: dict[str, str] = field(default_factory=dict)  # applied after `sh env` blocks
    cwd: Path | None = None  # where the shell starts (default: workdir)
    # text replaced in every block before it runs: the READMEs address `make serve`'s fixed
    # http://127.0.0.1:8080, which the tests point at a server of their own
    replacements: dict[str, str] = field(default_factory=dict)
    results: list[tuple[Block, float]] = field(default_factory=list)

    def run(self) -> None:
        blocks = [self._replaced(block) for block in collect(self.page)]
        shell = Shell(self.cwd or self.workdir, self.env, self.workdir / ".docs-harness")
        session: PythonSession | None = None
        try:
            for position, block in enumerate(blocks):
                if block.kind in ("output", "illustrative"):
                    continue
                following = blocks[position + 1] if position + 1 < len(blocks) else None
                expected = following.text if following and following.kind == "output" else None
                started = time.monotonic()
                if block.kind == "python" and "session" in block.options:
                    if session is None:
                        session = PythonSession(self._shell_cwd(shell), shell.environment())
                    ok, output = session.run(block.text)
                    self._check(block, ok, output, expected)
                else:
                    self._run_in_shell(shell, block, expected)
                self.results.append((block, time.monotonic() - started))
        finally:
            if session is not None:
                session.close()
            shell.close()

    def _replaced(self, block: Block) -> Block:
        text = block.text
        for old, new in self.replacements.items():
            text = text.replace(old, new)
        return dataclasses.replace(block, text=text)

    def _shell_cwd(self, shell: Shell) -> Path:
        status, output = shell.run("pwd\n")
        if status:
            raise SnippetError(f"cannot read the shell's folder: {output}")
        return Path(output.strip())

    def _run_in_shell(self, shell: Shell, block: Block, expected: str | None) -> None:
        status_option = block.option("status")
        expect_status = int(status_option) if status_option else None
        if block.kind == "sh":
            script = block.text
            if "repo" in block.options:  # run in the checkout, as the page says
                script = f"(\ncd {shlex.quote(str(REPO_ROOT))}\n{script})\n"
            if "env" in block.options:
                script += "".join(
                    f"export {name}={shlex.quote(value)}\n"
                    for name, value in self.overrides.items()
                )
        elif block.kind == "sql":
            script = f"psql -X -q -v ON_ERROR_STOP=1 \"$DATABASE_URL\" <<'__DOCS_SQL__'\n{block.text}__DOCS_SQL__\n"
        elif block.kind == "file":
            script = f"cat > {shlex.quote(block.options[0])} <<'__DOCS_FILE__'\n{block.text}__DOCS_FILE__\n"
        else:  # a complete python script
            path = shell.scratch / f"snippet-{block.line}.py"
            path.write_text(block.text, encoding="utf-8")
            script = f"python {shlex.quote(str(path))}\n"
        status, output = shell.run(script, expect_status=expect_status)
        ok = status == (expect_status or 0)
        if not ok:
            output += f"\n[exit status {status}, expected {expect_status or 0}]"
        self._check(block, ok, output, expected)

    def _check(self, block: Block, ok: bool, output: str, expected: str | None) -> None:
        __tracebackhide__ = True
        if not ok:
            raise SnippetError(f"{block.where}: the {block.kind} block failed:\n{output}")
        if expected is not None and not output_matches(expected, output):
            raise SnippetError(
                f"{block.where}: the {block.kind} block printed\n{output}\n"
                f"--- but its output block says\n{expected}"
            )


def iter_runnable(blocks: list[Block]) -> Iterator[Block]:
    return (block for block in blocks if block.kind not in ("output", "illustrative"))


if __name__ == "__main__" and sys.argv[1:] == ["--repl"]:
    repl_main()
