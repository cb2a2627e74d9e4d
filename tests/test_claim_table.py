"""`ClaimTable` holds what the dict of claim id to lines held, in the same order (worker/engine/claim_table.py).

The model is the structure it replaced: a dict from claim id to the claim's lines, where a higher
or equal version takes the claim's place and a lower one is ignored. Random adds (several lines,
resubmissions with more or fewer lines, lower versions) and drops must leave both with the same
lines in the same order (the order of evidence lists), the same claims and the same counts.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.engine.claim_table import ClaimTable
from worker.engine.records import PriorClaim, PriorLine


@st.composite
def _claims(draw: st.DrawFn) -> PriorClaim:
    claim_id = draw(st.sampled_from(["C1", "C2", "C3", "", "C\x00", "\udc80", "C1-2"]))
    version = draw(st.integers(1, 4))
    count = draw(st.integers(1, 3))
    return tuple(
        PriorLine(
            claim_id,
            version,
            number + 1,
            draw(st.sampled_from([30.0, 60.0, -0.0, 1.5])),
            date(2026, 1, draw(st.integers(1, 28))),
            draw(st.none() | st.integers(0, 90)),
            draw(st.none() | st.sampled_from(["00469061773", "55111052601"])),
        )
        for number in range(count)
    )


class _Asking:
    """An `expired` predicate as the horizon's (never a claim with a line on or after the cutoff, and
    not every other one) that records which claims it was asked about."""

    def __init__(self, cutoff: date) -> None:
        self.cutoff = cutoff
        self.asked: list[PriorClaim] = []

    def expired(self, claim: PriorClaim) -> bool:
        before = all(line.date_of_service < self.cutoff for line in claim)
        return before and (claim[0].days_supply or 0) % 3 != 1

    def __call__(self, claim: PriorClaim) -> bool:
        self.asked.append(claim)
        return self.expired(claim)


@settings(max_examples=300)
@given(st.lists(st.one_of(_claims(), st.integers(1, 28)), max_size=25))
def test_table_holds_what_the_dict_held(steps: list[PriorClaim | int]) -> None:
    table, model = ClaimTable(), dict[str, PriorClaim]()
    for step in steps:
        if isinstance(step, int):  # drop some claims with every line before that day of January
            cutoff = date(2026, 1, step)
            asking = _Asking(cutoff)
            dropped = table.drop(asking, before=cutoff)
            assert all(line.date_of_service < cutoff for claim in asking.asked for line in claim)
            expired = asking.expired
            gone = [claim for claim in model.values() if expired(claim)]
            assert dropped == gone
            model = {key: claim for key, claim in model.items() if not expired(claim)}
        else:
            claim_id, version = step[0].claim_id, step[0].claim_version
            current = model.get(claim_id)
            expected = int(current is None)
            if current is None or current[0].claim_version <= version:
                model[claim_id] = step
            assert table.add(step) == expected
        assert table.lines() == [line for claim in model.values() for line in claim]
        assert table.claims() == list(model.values())
        assert len(table) == len(model)
    table.clear()
    assert len(table) == 0 and table.lines() == []
