"""``oversync-conformance``: replay recorded protocol sessions against a server, or record them.

    oversync-conformance run --base-url URL (--jwt-secret S | --token-cmd CMD) [SESSION...]
    oversync-conformance record --base-url URL --jwt-secret S [SCENARIO...]
    oversync-conformance list

Exit status: 0 when everything passed, 1 when a session failed, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from oversync_conformance.report import format_step, format_summary, write_junit
from oversync_conformance.runner import Outcome, StepResult, Target, run_sessions
from oversync_conformance.session import Session, SessionFormatError, load_session, load_sessions
from oversync_conformance.tokens import CommandTokens, SecretTokens, TokenProvider

__all__ = ["DEFAULT_SESSIONS_DIR", "main"]


def _default_sessions_dir() -> Path:
    """The corpus: shipped inside the package when installed, else the source tree's."""
    inside = Path(__file__).resolve().parent / "sessions"
    return inside if inside.is_dir() else Path(__file__).resolve().parents[1] / "sessions"


DEFAULT_SESSIONS_DIR = _default_sessions_dir()
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A bad command line; printed without a traceback, exit status 2."""


def _select_sessions(names: Sequence[str], directory: Path) -> list[Session]:
    if not names:
        if not directory.is_dir():
            raise UsageError(f"no sessions directory at {directory}")
        return load_sessions([directory])
    sessions = []
    for name in names:
        path = Path(name)
        if not path.exists():
            path = directory / (name if name.endswith(".json") else f"{name}.json")
        if not path.exists():
            raise UsageError(f"no session {name!r} (looked in {directory})")
        sessions.extend(load_sessions([path]) if path.is_dir() else [load_session(path)])
    return sessions


def _filter(sessions: list[Session], tags: list[str], excluded: list[str]) -> list[Session]:
    chosen = [s for s in sessions if not tags or set(tags) & set(s.tags)]
    return [s for s in chosen if not set(excluded) & set(s.tags)]


def _tokens(args: argparse.Namespace) -> TokenProvider:
    if args.jwt_secret and args.token_cmd:
        raise UsageError("give either --jwt-secret or --token-cmd, not both")
    if args.jwt_secret:
        return SecretTokens(args.jwt_secret)
    if args.token_cmd:
        return CommandTokens(args.token_cmd)
    raise UsageError("give --jwt-secret (or OVERSYNC_CONFORMANCE_JWT_SECRET) or --token-cmd")


def run(args: argparse.Namespace) -> int:
    """Replay sessions against a server; print one line per step and a summary."""
    sessions = _filter(
        _select_sessions(args.sessions, Path(args.sessions_dir)), args.tag, args.exclude_tag
    )
    if not sessions:
        raise UsageError("no sessions selected")
    target = Target(
        base_url=args.base_url,
        tokens=_tokens(args),
        dev_endpoints=args.dev_endpoints,
        timeout=args.timeout,
    )

    def show(session: Session, step: StepResult) -> None:
        if args.quiet and step.outcome in (Outcome.PASSED, Outcome.SKIPPED):
            return
        print(format_step(session.name, step, total=len(session.steps)), flush=True)

    result = run_sessions(sessions, target, on_step=show)
    for session_result in result.sessions:
        if session_result.outcome is Outcome.SKIPPED and not session_result.steps:
            print(f"SKIP  {session_result.name} ({session_result.reason})")
    print()
    print(format_summary(result))
    if args.junit:
        write_junit(result, Path(args.junit))
    return EXIT_OK if result.ok else EXIT_FAILED


def record(args: argparse.Namespace) -> int:
    """Record scenarios against a live server into session files."""
    from oversync_conformance.recorder import record as record_one
    from oversync_conformance.scenarios import all_scenarios, get_scenario

    if not args.jwt_secret:
        raise UsageError("record needs --jwt-secret (or OVERSYNC_CONFORMANCE_JWT_SECRET)")
    try:
        chosen = [get_scenario(name) for name in args.scenarios]
    except KeyError as error:
        raise UsageError(str(error.args[0])) from error
    if not chosen:
        chosen = [s for s in all_scenarios() if args.include_pending or s.pending is None]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = Target(
        base_url=args.base_url,
        tokens=SecretTokens(args.jwt_secret),
        dev_endpoints=args.dev_endpoints,
        timeout=args.timeout,
    )
    failed = 0
    for entry in chosen:
        if "dev-endpoints" in entry.requires and not args.dev_endpoints:
            print(f"SKIP  {entry.name} (needs --dev-endpoints)")
            continue
        outcome = record_one(entry, target, out_dir=out_dir)
        if outcome.error:
            failed += 1
            note = f" [pending: {entry.pending}]" if entry.pending else ""
            print(f"FAIL  {entry.name}{note}\n      " + outcome.error.replace("\n", "\n      "))
        else:
            print(f"OK    {entry.name} -> {outcome.path}")
    return EXIT_FAILED if failed else EXIT_OK


def list_all(args: argparse.Namespace) -> int:
    """List the scenarios, whether each is pending, and the sessions of the corpus."""
    from oversync_conformance.scenarios import all_scenarios

    directory = Path(args.sessions_dir)
    recorded = {p.stem for p in directory.glob("*.json")} if directory.is_dir() else set()
    for entry in all_scenarios():
        state = (
            f"pending: {entry.pending}"
            if entry.pending
            else ("recorded" if entry.name in recorded else "NOT RECORDED")
        )
        print(f"{entry.name:<44} {state}")
    return EXIT_OK


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("OVERSYNC_CONFORMANCE_JWT_SECRET", ""),
        help="sign HS256 tokens (sub = user id) with this secret",
    )
    parser.add_argument(
        "--dev-endpoints",
        action="store_true",
        help="the server mounts /test/* (run the sessions that need them)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oversync-conformance", description=(__doc__ or "").split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sessions_dir = str(DEFAULT_SESSIONS_DIR)

    run_parser = commands.add_parser("run", help=run.__doc__, description=run.__doc__)
    _add_target_options(run_parser)
    run_parser.add_argument(
        "--token-cmd", default="", help="command printing a token for the user id ({user})"
    )
    run_parser.add_argument("--junit", default="", help="write a JUnit XML report to this file")
    run_parser.add_argument("--sessions-dir", default=sessions_dir)
    run_parser.add_argument("--tag", action="append", default=[], help="only sessions with TAG")
    run_parser.add_argument(
        "--exclude-tag", action="append", default=[], help="leave out sessions with TAG"
    )
    run_parser.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    run_parser.add_argument("sessions", nargs="*", metavar="SESSION", help="name or file")
    run_parser.set_defaults(handler=run)

    record_parser = commands.add_parser("record", help=record.__doc__, description=record.__doc__)
    _add_target_options(record_parser)
    record_parser.add_argument("--out", default=sessions_dir, help="where to write sessions")
    record_parser.add_argument(
        "--include-pending", action="store_true", help="also try the pending scenarios"
    )
    record_parser.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    record_parser.set_defaults(handler=record)

    list_parser = commands.add_parser("list", help=list_all.__doc__, description=list_all.__doc__)
    list_parser.add_argument("--sessions-dir", default=sessions_dir)
    list_parser.set_defaults(handler=list_all)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (UsageError, SessionFormatError) as error:
        print(f"oversync-conformance: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return code


if __name__ == "__main__":
    sys.exit(main())
