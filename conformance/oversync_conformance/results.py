"""The results of a replay (step, session, run) and their text form.

The runner builds them, the reports render them; both import this module, which imports neither,
so :meth:`SessionResult.report` can render itself without an import cycle.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from enum import StrEnum

from oversync_conformance.matching import Mismatch
from oversync_conformance.session import Session

__all__ = [
    "Outcome",
    "RunResult",
    "SessionResult",
    "StepResult",
    "failure_details",
    "format_session",
    "format_step",
]


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    """The step could not be carried out (transport error, no token, unbound capture)."""
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class StepResult:
    index: int
    """1-based position in the session."""
    name: str
    actor: str
    method: str
    path: str
    outcome: Outcome
    expected_status: int
    status: int | None = None
    mismatches: tuple[Mismatch, ...] = ()
    diff: str = ""
    detail: str = ""
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionResult:
    session: Session
    outcome: Outcome
    steps: tuple[StepResult, ...] = ()
    users: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    elapsed: float = 0.0

    @property
    def name(self) -> str:
        return self.session.name

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.PASSED, Outcome.SKIPPED)

    def report(self) -> str:
        """The text report of this session (what the CLI prints)."""
        return format_session(self, verbose=True)


@dataclass(frozen=True, slots=True)
class RunResult:
    sessions: tuple[SessionResult, ...]

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.sessions)

    def count(self, outcome: Outcome) -> int:
        return sum(result.outcome is outcome for result in self.sessions)


_LABELS = {
    Outcome.PASSED: "PASS",
    Outcome.FAILED: "FAIL",
    Outcome.ERROR: "ERROR",
    Outcome.SKIPPED: "SKIP",
}


def format_step(session: str, step: StepResult, *, total: int) -> str:
    """``PASS  session 3/7 phone POST /sync/... -> 200  name``, then the details of a failure."""
    status = "-" if step.status is None else str(step.status)
    line = (
        f"{_LABELS[step.outcome]:<5} {session} {step.index}/{total} {step.actor} "
        f"{step.method} {step.path} -> {status}  {step.name}"
    )
    details = failure_details(step)
    return line + ("\n" + textwrap.indent(details, "      ") if details else "")


def failure_details(step: StepResult) -> str:
    if step.outcome is Outcome.PASSED:
        return ""
    if step.outcome is Outcome.SKIPPED:
        return ""
    lines = [step.detail] if step.detail else []
    lines += [f"- {mismatch}" for mismatch in step.mismatches]
    if step.diff:
        lines.append(step.diff)
    return "\n".join(lines)


def format_session(result: SessionResult, *, verbose: bool = False) -> str:
    """The session's header line, then its steps (all of them when ``verbose``, else the
    failing one)."""
    header = f"{result.name}: {result.outcome.value.upper()}"
    if result.reason:
        header += f" ({result.reason})"
    lines = [header]
    total = len(result.session.steps)
    for step in result.steps:
        if verbose or step.outcome in (Outcome.FAILED, Outcome.ERROR):
            lines.append("  " + format_step(result.name, step, total=total))
    return "\n".join(lines)
