"""Request templates: ``${name}`` placeholders in strings and ``{"$ref": name}`` body values.

Names are captures of earlier steps and ``user.<label>``, the fresh user id of a user label.
"""

from __future__ import annotations

import re
from typing import Any

from oversync_conformance.matching import Bindings

__all__ = ["UnboundName", "interpolate", "placeholder", "resolve_body"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


class UnboundName(KeyError):
    """A template names a value that no earlier step captured."""

    def __str__(self) -> str:
        return f"nothing was captured as {self.args[0]!r}"


def placeholder(name: str) -> str:
    return "${" + name + "}"


def _lookup(bindings: Bindings, name: str) -> Any:
    if name not in bindings:
        raise UnboundName(name)
    return bindings[name]


def interpolate(text: str, bindings: Bindings) -> str:
    """Replace every ``${name}`` in ``text`` with the bound value (integers in decimal)."""
    return _PLACEHOLDER.sub(lambda found: str(_lookup(bindings, found.group(1))), text)


def resolve_body(value: Any, bindings: Bindings) -> Any:
    """Replace every ``{"$ref": name, "plus": n}`` in a request body with the bound value."""
    if isinstance(value, dict):
        if "$ref" in value and set(value) <= {"$ref", "plus"}:
            bound = _lookup(bindings, str(value["$ref"]))
            plus = value.get("plus", 0)
            return bound + plus if plus else bound
        return {key: resolve_body(member, bindings) for key, member in value.items()}
    if isinstance(value, list):
        return [resolve_body(item, bindings) for item in value]
    return value
