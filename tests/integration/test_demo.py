"""The README's main job: `python -m worker demo` on its own embedded broker, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_decides_every_claim_and_prints_a_summary() -> None:
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"}
    env["METRICS_PORT"] = "0"  # any free port: the test must not depend on 9400 being free
    result = subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--patients", "25"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = result.stderr
    decided = re.search(
        r"Decided (\d+) claim versions .*; (\d+) without a J7507 line skipped; (\d+) dead letters", summary
    )
    produced = re.search(r"\((\d+) claim versions\) in time order", summary)
    assert decided and produced, summary[-3000:]
    assert int(decided.group(1)) + int(decided.group(2)) == int(produced.group(1))
    assert int(decided.group(3)) == 0
    for outcome in ("ACCEPT", "HOLD", "DENY_RISK"):
        assert re.search(rf"^  {outcome}\s+\d+\s+[\d.]+%$", summary, re.MULTILINE)
    assert "Top rules" in summary
    late = re.search(r"Late context: (\d+) records", summary)
    assert late and int(late.group(1)) == 3  # 3 of the 25 patients get an outside lab after the stream
    assert re.search(r"Metrics: http://127\.0\.0\.1:\d+/metrics", summary)
