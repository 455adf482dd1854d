"""Conformance kit: recorded protocol sessions replayed against any oversync server.

    from oversync_conformance import SecretTokens, Target, load_sessions, run_sessions

    target = Target(base_url="http://127.0.0.1:8080", tokens=SecretTokens("secret"))
    result = run_sessions(load_sessions([Path("conformance/sessions")]), target)
    assert result.ok

The session format is described in ``conformance/README.md`` and :mod:`.session`; the matcher
directives in :mod:`.matching`; recording in :mod:`.recorder`.
"""

from oversync_conformance.matching import Bindings, MatchResult, Mismatch, match
from oversync_conformance.report import format_session, format_summary, junit_xml, write_junit
from oversync_conformance.runner import (
    Outcome,
    RunResult,
    SessionResult,
    StepResult,
    Target,
    run_session,
    run_sessions,
)
from oversync_conformance.session import (
    FORMAT,
    Actor,
    Expect,
    JsonBody,
    Request,
    Session,
    SessionFormatError,
    Step,
    TextBody,
    load_session,
    load_sessions,
    parse_session,
)
from oversync_conformance.tokens import CommandTokens, SecretTokens, TokenError, TokenProvider

__all__ = [
    "FORMAT",
    "Actor",
    "Bindings",
    "CommandTokens",
    "Expect",
    "JsonBody",
    "MatchResult",
    "Mismatch",
    "Outcome",
    "Request",
    "RunResult",
    "SecretTokens",
    "Session",
    "SessionFormatError",
    "SessionResult",
    "Step",
    "StepResult",
    "Target",
    "TextBody",
    "TokenError",
    "TokenProvider",
    "format_session",
    "format_summary",
    "junit_xml",
    "load_session",
    "load_sessions",
    "match",
    "parse_session",
    "run_session",
    "run_sessions",
    "write_junit",
]
