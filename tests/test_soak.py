"""The short fault-injection soak (docs/soak.md): two fixed seeds, about a minute each.

`make soak` runs the long one. Each run starts its own PostgreSQL, servers, proxy and device
processes, injects faults at random and checks the recorded histories (soak.checker).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from soak.run import RunConfig, run_seed

SHORT_RUNS = [RunConfig(seed=101, seconds=45), RunConfig(seed=102, seconds=45)]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("config", SHORT_RUNS, ids=lambda c: f"seed{c.seed}")
def test_short_soak(config: RunConfig, tmp_path: Path) -> None:
    result = run_seed(config, tmp_path)
    report = result.report
    explained = "\n".join(report.explain(f) for f in report.failures[:5])
    assert result.ok, f"{explained}\nreplay: {config.replay_command()}"
    assert report.stats["committed writes checked"] > 100
    assert report.stats["bundles audited"] > 10
    assert sum(result.faults.values()) > 10  # faults were injected
