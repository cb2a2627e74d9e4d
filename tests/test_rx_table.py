"""The column store of a patient's prescriptions (worker/engine/rx_table.py) against what it replaced.

The model is a dict of prescription id to its versions (`Versions.add`), pruned by settling each
list and dropping the single versions the horizon lets go. Over random versions (times and event
times absent or not, corrections arriving out of order) and prunes, both hold the same entries and
show every claim time the same prescriptions, with every field as it went in.
"""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.engine.records import RxFacts, Versions
from worker.engine.rx_table import RxTable

_TIMES = st.none() | st.integers(-3, 12)


@st.composite
def _versions(draw: st.DrawFn) -> RxFacts:
    return RxFacts(
        draw(st.sampled_from(["RX1", "RX2", "RX3", "", "\udc80"])),
        draw(st.sampled_from(["ACTIVE", "STOPPED", "COMPLETED"])),
        "tacrolimus",
        "tacrolimus",
        "IMMEDIATE_RELEASE",
        "ORAL",
        draw(st.none() | st.sampled_from([0.5, 1.0, -0.0])),
        1.0,
        draw(st.none() | st.integers(1, 3)),
        30,
        date(2026, 1, draw(st.integers(1, 28))),
        draw(st.none() | st.just(date(2026, 2, 1))),
        70.5,
        draw(st.booleans()),
        None,
        draw(_TIMES),
        draw(_TIMES),
        0,  # seq: set to the arrival order by the test
    )


def _model_prune(model: dict[str, RxFacts | list[RxFacts]], settled: int | None, cutoff: date) -> int:
    for key, held in model.items():
        model[key] = Versions.settle(held, settled)
    gone = [key for key, held in model.items() if isinstance(held, RxFacts) and held.start_date < cutoff]
    for key in gone:
        del model[key]
    return len(gone)


@settings(max_examples=300)
@given(st.lists(st.one_of(_versions(), st.tuples(_TIMES, st.integers(1, 28))), max_size=25))
def test_table_holds_and_shows_what_the_dict_did(steps: list[RxFacts | tuple[int | None, int]]) -> None:
    table, model = RxTable(), dict[str, RxFacts | list[RxFacts]]()
    for arrival, step in enumerate(steps):
        if isinstance(step, RxFacts):
            step = step._replace(seq=arrival)  # arrival order, unique as in the stream
            held = model.get(step.prescription_id)
            assert table.add(step) == int(held is None)
            model[step.prescription_id] = Versions.add(held, step)
        else:
            settled, day = step
            cutoff = date(2026, 1, day)
            assert table.prune(settled, lambda rx, cutoff=cutoff: rx.start_date < cutoff) == _model_prune(
                model, settled, cutoff
            )
        assert dict(table.entries()) == model
        assert len(table) == len(model)
        for as_of in (None, -4, 0, 5, 13):
            expected = [rx for held in model.values() if (rx := Versions.newest(held, as_of))]
            shown = sorted(table.visible(as_of), key=lambda rx: rx.seq)
            expected.sort(key=lambda rx: rx.seq)
            assert shown == expected
            assert [str(rx.strength_mg) for rx in shown] == [str(rx.strength_mg) for rx in expected]  # -0.0 kept


def test_a_row_keeps_the_sign_of_zero_and_absent_times() -> None:
    table = RxTable()
    version = RxFacts(
        "RX1", "ACTIVE", "t", "t", "IMMEDIATE_RELEASE", "ORAL", -0.0, None, None, None,
        date(1, 1, 1), None, None, False, "why", None, None, 2**62,
    )  # fmt: skip
    table.add(version)
    (back,) = table.visible(None)
    assert back == version and str(back.strength_mg) == "-0.0"


@settings(max_examples=200)
@given(st.lists(_versions(), max_size=20), st.sampled_from(["ACTIVE", "STOPPED", "COMPLETED"]))
def test_prune_asks_may_expire_first_and_only_from_the_columns(versions: list[RxFacts], spared: str) -> None:
    """A row `may_expire` answers False for stays and `expired` is not asked about it; the others are
    pruned as without it. Its arguments are the row's own status and end date."""
    table, plain = RxTable(), RxTable()
    for arrival, version in enumerate(versions):
        table.add(version._replace(seq=arrival))
        plain.add(version._replace(seq=arrival))
    rows = {rx.prescription_id: rx for rx in table.visible(None) if rx.prescription_id not in table.versions}
    asked_first: list[tuple[str, date | None]] = []
    asked_then: list[RxFacts] = []

    def may_expire(status: str, end_date: date | None) -> bool:
        asked_first.append((status, end_date))
        return status != spared

    def expired(rx: RxFacts) -> bool:
        asked_then.append(rx)
        return True

    dropped = table.prune(None, expired, may_expire)
    assert sorted(asked_first, key=repr) == sorted(((rx.status, rx.end_date) for rx in rows.values()), key=repr)
    assert all(rx.status != spared for rx in asked_then)
    assert dropped == plain.prune(None, lambda rx: rx.status != spared)
    assert dict(table.entries()) == dict(plain.entries())
