"""Progress of the impact read on stderr: a live line on a terminal, a plain line every few seconds."""

from __future__ import annotations

import io

from worker.offline.impact_progress import LOG_EVERY_S, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_not_a_terminal_logs_a_line_every_few_seconds_and_the_last_one() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out, terminal=False, clock=clock)
    progress.update(10, 1000)
    assert out.getvalue() == ""  # nothing in the first seconds
    clock.now += LOG_EVERY_S
    progress.update(250, 1000)
    clock.now += 1
    progress.update(300, 1000)  # too soon for another line
    clock.now += 1
    progress.update(1000, 1000, final=True)
    lines = out.getvalue().splitlines()
    assert lines == [
        "impact: read 250/1,000 records (25.0%), 50/s, 0m15s left",
        "impact: read 1,000/1,000 records (100.0%), 143/s, 0m00s left",
    ]


def test_a_terminal_rewrites_one_line() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(out, terminal=True, clock=clock)
    clock.now += 2
    progress.update(2_000, 10_000)
    clock.now += 2
    progress.update(4_000, 10_000, final=True)
    text = out.getvalue()
    assert text.startswith("\rread 2,000/10,000 records (20.0%), 1,000/s, 0m08s left")
    assert text.endswith("\rread 4,000/10,000 records (40.0%), 1,000/s, 0m06s left\n")
