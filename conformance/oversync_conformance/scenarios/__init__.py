"""The scenario registry: plain functions that drive a server through the typed client.

    @scenario(tags=("push",))
    def push_commit(ctx: ScenarioContext) -> None:
        \"\"\"One bundle: create, chunk, commit, fetch its rows.\"\"\"
        phone = ctx.actor("phone", user="alice", source="phone-1")
        ...

A scenario is recorded into ``conformance/sessions/<name>.json``. One that the server cannot
pass yet is registered with ``pending="why"``: it stays out of the corpus until it passes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from oversync_conformance.context import ScenarioContext

__all__ = ["Scenario", "ScenarioFunction", "all_scenarios", "get_scenario", "scenario"]

ScenarioFunction = Callable[[ScenarioContext], None]


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    function: ScenarioFunction
    summary: str
    tags: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    pending: str | None = None
    """Why the scenario is kept out of the corpus for now (None: it is in the corpus)."""

    @property
    def qualified_name(self) -> str:
        return f"{self.function.__module__}:{self.function.__name__}"


_REGISTRY: dict[str, Scenario] = {}


def scenario(
    *,
    name: str | None = None,
    tags: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
    pending: str | None = None,
) -> Callable[[ScenarioFunction], ScenarioFunction]:
    """Register a scenario under its function name; duplicate names are rejected."""

    def register(function: ScenarioFunction) -> ScenarioFunction:
        key = name or function.__name__
        if key in _REGISTRY:
            raise ValueError(f"scenario {key!r} is registered twice")
        summary = (function.__doc__ or "").strip().split("\n\n")[0]
        _REGISTRY[key] = Scenario(key, function, " ".join(summary.split()), tags, requires, pending)
        return function

    return register


def _load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def all_scenarios() -> list[Scenario]:
    """Every registered scenario, in name order."""
    _load_all()
    return sorted(_REGISTRY.values(), key=lambda entry: entry.name)


def get_scenario(name: str) -> Scenario:
    _load_all()
    if name not in _REGISTRY:
        raise KeyError(f"no scenario named {name!r}")
    return _REGISTRY[name]
