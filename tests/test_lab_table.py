"""The column store of a patient's labs (worker/engine/lab_table.py): what goes in comes out equal."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from worker.engine.lab_table import LabTable
from worker.engine.records import LabFacts

LEVEL, CREATININE = "11253-2", "2160-0"


def facts(
    observation_id: str,
    day: date,
    *,
    code: str = LEVEL,
    value: float | None = 7.5,
    time: int | None = 1,
    event_ms: int | None = 1,
    seq: int = 0,
    counted: bool = True,
) -> LabFacts:
    effective_ms = (day - date(1970, 1, 1)).days * 86_400_000 + 3_600_000
    return LabFacts(observation_id, code, counted, value, effective_ms, day, event_ms, time, seq)


def test_a_row_comes_back_with_every_field_as_it_went_in() -> None:
    table = LabTable()
    odd = [
        facts("A", date(2025, 1, 1)),
        facts("B", date(1, 1, 1), value=None, time=None, event_ms=None, counted=False, code=CREATININE, seq=2),
        facts("C", date(9999, 12, 31), value=-0.0, time=-5, event_ms=2**62, seq=2**40),
    ]
    assert [table.add(lab) for lab in odd] == [1, 1, 1]
    back = dict(table.entries())
    assert [back[lab.observation_id] for lab in odd] == odd
    assert str(back["C"].value) == "-0.0"  # type: ignore[union-attr]
    assert len(table) == 3


def test_a_second_version_is_kept_beside_the_first_and_each_claim_sees_its_own() -> None:
    table = LabTable()
    first = facts("A", date(2025, 1, 1), value=7.5, time=10, event_ms=10, seq=1)
    correction = facts("A", date(2025, 1, 1), value=25.0, time=20, event_ms=20, seq=2)
    assert table.add(first) == 1
    assert table.add(correction) == 0
    assert len(table) == 1
    assert table.visible(15) == [first]
    assert table.visible(20) == [correction]
    assert table.visible(5) == []
    # Once every later claim sees the correction, a prune folds the two into one row.
    assert table.prune(date(2000, 1, 1), 20, lambda code: code == LEVEL) == 0
    assert table.versions == {}
    assert dict(table.entries()) == {"A": correction}


def test_a_prune_drops_old_labs_but_the_newest_old_level_and_compacts() -> None:
    table = LabTable()
    start = date(2025, 1, 1)
    labs = [facts(f"L{n}", start + timedelta(days=n), seq=n) for n in range(10)]
    labs += [facts(f"K{n}", start + timedelta(days=n), code=CREATININE, seq=100 + n) for n in range(10)]
    for lab in labs:
        table.add(lab)
    cut = start + timedelta(days=5)
    dropped = table.prune(cut, None, lambda code: code == LEVEL)
    kept = dict(table.entries())
    # Days 0-4 of both codes go, except the newest old level (L4, day 4), kept for look-backs.
    assert dropped == 9
    assert set(kept) == {"L4", *(f"L{n}" for n in range(5, 10)), *(f"K{n}" for n in range(5, 10))}
    assert all(kept[lab.observation_id] == lab for lab in labs if lab.observation_id in kept)
    assert table.visible(None) == [lab for lab in labs if lab.observation_id in kept]


@pytest.mark.parametrize("with_absent_times", [False, True])
def test_each_claim_sees_the_counted_labs_stamped_no_later_than_it(with_absent_times: bool) -> None:
    # Both ways of building the view: zipped columns, and row by row when some time is absent.
    table = LabTable()
    labs = [
        facts(f"L{n}", date(2025, 1, 1) + timedelta(days=n), time=10 * n, event_ms=10 * n, seq=n, counted=n % 3 != 0)
        for n in range(12)
    ]
    if with_absent_times:
        labs.append(facts("OFFLINE", date(2025, 2, 1), time=None, event_ms=None, seq=99))
    for lab in labs:
        table.add(lab)
    table.prune(date(2025, 1, 3), None, lambda code: False)  # leaves holes to compact
    held = [lab for lab in labs if lab.effective_date >= date(2025, 1, 3)]
    for as_of in (None, -1, 0, 45, 50, 1000):
        expected = [lab for lab in held if lab.counted and (as_of is None or lab.time is None or lab.time <= as_of)]
        assert table.visible(as_of) == expected, as_of
