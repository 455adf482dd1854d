"""Griffe extension: doctest examples and reST literal blocks in docstrings render as code.

The project's docstrings are plain text with `>>>` examples and `Usage::` blocks (sphinx
style); Markdown would read `>>>` as nested quotes and `[...]` in their output as links. This
fences each run of doctest lines as `pycon`, and ends a `::` paragraph with one colon (its
indented block is already a Markdown code block).
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            run: list[str] = []
            while index < len(lines) and lines[index].strip():
                run.append(lines[index][len(indent) :])
                index += 1
            out += [f"{indent}```pycon", *(indent + part for part in run), f"{indent}```"]
            continue
        if line.endswith("::") and not line.rstrip(":").endswith(" "):
            line = line[:-1]
        out.append(line)
        index += 1
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
