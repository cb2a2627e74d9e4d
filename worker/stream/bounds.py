"""Bounds on one claim, so no single claim can exhaust the worker.

X12 837P allows at most 50 service lines per professional claim; a claim with more is not a claim
any payer would take, and its decision (one entry per line) would grow without bound. It is a
`contract` dead letter (stream) or a malformed line (offline), like any other contract violation.
"""

from __future__ import annotations

from worker.engine.events import Claim

DEFAULT_MAX_CLAIM_LINES = 50  # X12 837P: 50 service lines per claim


def claim_lines_problem(claim: Claim, max_lines: int) -> str | None:
    """Why the claim breaks the bounds (names the limit, never a value), or None."""
    if len(claim.lines) > max_lines:
        return (
            f"claim.lines: {len(claim.lines)} service lines, over the limit of {max_lines} "
            "(MAX_CLAIM_LINES; X12 837P allows 50)"
        )
    return None
