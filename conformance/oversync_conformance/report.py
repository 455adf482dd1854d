"""Reports of a run: one line per step with a diff on failure, a summary, and JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from oversync_conformance.results import (
    Outcome,
    RunResult,
    StepResult,
    failure_details,
    format_session,
    format_step,
)

# the step and session lines live in :mod:`.results` (SessionResult.report uses them)
__all__ = ["format_session", "format_step", "format_summary", "junit_xml", "write_junit"]


def format_summary(run: RunResult) -> str:
    counts = ", ".join(
        f"{run.count(outcome)} {outcome.value}"
        for outcome in Outcome
        if run.count(outcome) or outcome is Outcome.PASSED
    )
    lines = [f"{len(run.sessions)} sessions: {counts}"]
    for result in run.sessions:
        if not result.ok:
            failing = next(
                (step for step in result.steps if step.outcome is not Outcome.PASSED), None
            )
            where = f" at step {failing.index} ({failing.name})" if failing else ""
            lines.append(f"  {result.outcome.value}: {result.name}{where}")
        elif result.outcome is Outcome.SKIPPED:
            lines.append(f"  skipped: {result.name} ({result.reason})")
    return "\n".join(lines)


def junit_xml(run: RunResult) -> ET.ElementTree[ET.Element]:
    """One ``testsuite`` per session and one ``testcase`` per step."""
    root = ET.Element("testsuites", name="oversync-conformance")
    for result in run.sessions:
        suite = ET.SubElement(
            root,
            "testsuite",
            name=result.name,
            tests=str(max(len(result.steps), 1)),
            failures=str(sum(step.outcome is Outcome.FAILED for step in result.steps)),
            errors=str(sum(step.outcome is Outcome.ERROR for step in result.steps)),
            skipped=str(sum(step.outcome is Outcome.SKIPPED for step in result.steps)),
            time=f"{result.elapsed:.3f}",
        )
        if not result.steps:  # the whole session was skipped
            case = ET.SubElement(suite, "testcase", classname=result.name, name="session")
            ET.SubElement(case, "skipped", message=result.reason)
            suite.set("skipped", "1")
            continue
        for step in result.steps:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=result.name,
                name=f"{step.index:02d} {step.name}",
                time=f"{step.elapsed:.3f}",
            )
            _outcome_element(case, step)
    ET.indent(root)
    return ET.ElementTree(root)


def _outcome_element(case: ET.Element, step: StepResult) -> None:
    summary = f"{step.method} {step.path}: " + "; ".join(
        [step.detail] if step.detail else [str(m) for m in step.mismatches[:3]]
    )
    if step.outcome is Outcome.FAILED:
        ET.SubElement(case, "failure", message=summary).text = failure_details(step)
    elif step.outcome is Outcome.ERROR:
        ET.SubElement(case, "error", message=summary).text = failure_details(step)
    elif step.outcome is Outcome.SKIPPED:
        ET.SubElement(case, "skipped", message=step.detail)


def write_junit(run: RunResult, path: Path) -> None:
    junit_xml(run).write(path, encoding="utf-8", xml_declaration=True)
