"""Progress of a long read on stderr: a live line on a terminal, a plain line every few seconds otherwise.

Shows records read of the total, the rate and the time left; counts only, never record contents.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

TERMINAL_EVERY_S = 0.5
LOG_EVERY_S = 5.0


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    def __init__(
        self,
        out: TextIO,
        *,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        what: str = "records",
    ) -> None:
        self.out = out
        self.terminal = out.isatty() if terminal is None else terminal
        self.clock = clock
        self.what = what
        self.started = clock()
        self._shown_at: float | None = None
        self._last = ""

    def line(self, done: int, total: int) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        share = f" ({100 * done / total:.1f}%)" if total else ""
        left = f", {_duration((total - done) / rate)} left" if rate > 0 and total >= done else ""
        return f"read {done:,}/{total:,} {self.what}{share}, {rate:,.0f}/s{left}"

    def update(self, done: int, total: int, *, final: bool = False) -> None:
        now = self.clock()
        every = TERMINAL_EVERY_S if self.terminal else LOG_EVERY_S
        if not final and self._shown_at is not None and now - self._shown_at < every:
            return
        if self._shown_at is None and not final and not self.terminal and now - self.started < every:
            return  # a short run logs nothing but its last line
        self._shown_at = now
        text = self.line(done, total)
        if self.terminal:
            self.out.write(f"\r{text:<{len(self._last)}}" + ("\n" if final else ""))
        else:
            self.out.write(f"impact: {text}\n")
        self._last = text
        self.out.flush()
