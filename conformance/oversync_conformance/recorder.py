"""Record sessions from real exchanges: scenarios drive a live server through the typed client.

A scenario gets a :class:`~oversync_conformance.context.ScenarioContext`, declares actors and calls operations of the
generated client (``oversync_client``) through them, stating the status (and error code) each
call must get. Every HTTP exchange goes through a recording transport. The scenario runs twice
on fresh users; :func:`oversync_conformance.generalize.generalize` turns the two runs into a
session, and the session is replayed once against the same server before it is written.

    from oversync_client.api.discovery import get_capabilities

    @scenario(tags=("discovery",))
    def capabilities(ctx: ScenarioContext) -> None:
        \"\"\"The capabilities document of the example schema.\"\"\"
        phone = ctx.actor("phone", user="alice", source="phone-1")
        phone.call(get_capabilities.sync_detailed, expect=200)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from oversync_conformance.context import (
    CapturedInt,
    CapturedStr,
    Expectation,
    ScenarioActor,
    ScenarioContext,
    ScenarioFailure,
    parsed,
)
from oversync_conformance.generalize import Recording, RecordingError, generalize
from oversync_conformance.runner import Target, run_session
from oversync_conformance.scenarios import Scenario
from oversync_conformance.session import Session
from oversync_conformance.tokens import SecretTokens

# The scenario API lives in :mod:`.context` (scenarios import it, not this module); it is
# re-exported here for code written against the recorder.
__all__ = [
    "CapturedInt",
    "CapturedStr",
    "Expectation",
    "RecordResult",
    "ScenarioActor",
    "ScenarioContext",
    "ScenarioFailure",
    "parsed",
    "record",
    "record_scenario",
]


def _run_once(
    scenario: Scenario, base_url: str, tokens: SecretTokens, transport: httpx.BaseTransport | None
) -> Recording:
    ctx = ScenarioContext(base_url, tokens, transport)
    try:
        scenario.function(ctx)
    finally:
        ctx.close()
    return ctx.recording


def record_scenario(
    scenario: Scenario,
    *,
    base_url: str,
    tokens: SecretTokens,
    transport: httpx.BaseTransport | None = None,
) -> Session:
    """Run ``scenario`` twice on fresh users and generalize the runs into a session.

    Raises:
        ScenarioFailure: the server did not answer as the scenario requires.
        RecordingError: the two runs cannot be merged (the scenario is not deterministic).
    """
    first = _run_once(scenario, base_url, tokens, transport)
    second = _run_once(scenario, base_url, tokens, transport)
    return generalize(
        first,
        second,
        name=scenario.name,
        summary=scenario.summary,
        scenario=scenario.qualified_name,
        tags=scenario.tags,
        requires=scenario.requires,
    )


@dataclass(frozen=True, slots=True)
class RecordResult:
    scenario: Scenario
    session: Session | None
    error: str = ""
    path: Path | None = None


def record(scenario: Scenario, target: Target, *, out_dir: Path | None = None) -> RecordResult:
    """Record ``scenario``, replay the session against the same server and, when it passes,
    write it to ``out_dir``. Failures come back in :attr:`RecordResult.error`.

    Recording signs its own tokens, so ``target.tokens`` must be :class:`SecretTokens`."""
    if not isinstance(target.tokens, SecretTokens):
        raise TypeError("recording needs the JWT secret (SecretTokens)")
    try:
        session = record_scenario(
            scenario, base_url=target.base_url, tokens=target.tokens, transport=target.transport
        )
    except (ScenarioFailure, RecordingError, httpx.HTTPError) as error:
        return RecordResult(scenario, None, f"{type(error).__name__}: {error}")
    replay = run_session(session, target)
    if not replay.ok:
        return RecordResult(
            scenario, session, "the recorded session does not replay:\n" + replay.report()
        )
    path = session.write(out_dir) if out_dir is not None else None
    return RecordResult(scenario, session, path=path)
