"""MkDocs hook: the newest committed benchmark chart, served as `img/bench-latest.png`.

`make bench` writes `bench/results/<UTC timestamp>-<name>.png`; the file names sort by time, so
the newest is the last one. The page `benchmarks.md` embeds it, and copying it at build time
(instead of committing a copy under `docs/`) keeps the page from showing an older run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
TARGET = "img/bench-latest.png"


def newest_chart() -> Path:
    charts = sorted(RESULTS.glob("*.png"), key=lambda path: path.name)
    if not charts:
        raise FileNotFoundError(f"no benchmark chart in {RESULTS} (run `make bench`)")
    return charts[-1]


def on_files(files: Files, config: Any) -> Files:
    chart = newest_chart()
    files.append(File.generated(config, TARGET, abs_src_path=str(chart)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri == "benchmarks.md":
        return markdown.replace("<!-- bench-chart-name -->", f"`{newest_chart().name}`")
    return markdown
