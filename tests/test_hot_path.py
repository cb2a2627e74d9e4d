"""The hot path's shortcuts give exactly what the plain computations give (issue 10).

- decision ids computed from the digest are `uuid.uuid5` ids;
- rules that a pack setting turns off (`applies`) would not have fired for that pack: deciding with
  every rule and with the pack's rule set gives the same decisions;
- cached decimals keep the sign of zero; cached products, comparisons and billed units give what a
  fresh computation gives, on the first call and on a repeat; epoch milliseconds floor as the division does;
- the compiled Avro writer writes the bytes fastavro writes, and leaves errors to the checked way.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.codec.avro import AvroCodec
from worker.devkit.synthetic import generate
from worker.engine.context import PatientContext
from worker.engine.evaluate import DECISION_NAMESPACE, Evaluator, decision_id
from worker.engine.events import Bundle, Source
from worker.engine.exact import EXACT, dec, text, whole_units
from worker.engine.records import time_ms
from worker.engine.reference import load_reference
from worker.engine.rules import RULES
from worker.engine.rules.coding import _ndc_units
from worker.engine.rules.facts import _billed_units, _expected_units
from worker.engine.rules.labs import _rises
from worker.engine.rules.order import _dose_above_limit
from worker.engine.rules.packs import Pack, load_packs
from worker.errors import EncodeError
from worker.offline.offline import decision_json

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@given(st.text(max_size=40), st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_decision_id_is_uuid5(claim_id: str, version: int) -> None:
    for pack in load_packs().built_in.values():
        name = f"{claim_id}\x1f{version}\x1f{pack.name}\x1f{pack.version}"
        assert decision_id(claim_id, version, pack) == str(uuid.uuid5(DECISION_NAMESPACE, name))


class _EveryRule(Evaluator):
    """The evaluator as it was: every rule of the pack's family set, `applies` ignored."""

    def _rules_for(self, pack: Pack) -> Any:
        rule_of = {
            spec.check: spec for spec in RULES.values() if pack.settings.medicare_rules or not spec.medicare_only
        }
        return tuple(rule_of), rule_of, pack.ref


@pytest.mark.parametrize("payer_config", [None, FIXTURES / "payer-config"])
def test_rules_a_pack_turns_off_would_not_fire(payer_config: Path | None) -> None:
    assert any(spec.applies is not None for spec in RULES.values())  # the payer rules
    packs, reference = load_packs(payer_config), load_reference()
    every_rule, pruned = _EveryRule(packs, reference), Evaluator(packs, reference)
    lines = (FIXTURES / "bundles.jsonl").read_text(encoding="utf-8").splitlines()
    payer_ids = set(packs.overrides) | {"ANY-PAYER"}
    for bundle in (Bundle.model_validate(json.loads(raw)["bundle"]) for raw in lines if raw.strip()):
        context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
        for payer_type in ("MEDICARE", "MEDICAID", "COMMERCIAL", "OTHER"):
            for payer_id in sorted(payer_ids):
                payer = bundle.claim.payer.model_copy(update={"payer_type": payer_type, "payer_id": payer_id})
                claim = bundle.claim.model_copy(update={"payer": payer})
                expected = decision_json(every_rule.decide(claim, context))
                actual = decision_json(pruned.decide(claim, context))
                expected.pop("decided_at"), actual.pop("decided_at")
                assert actual == expected


def test_cached_decimals_keep_the_sign_of_zero_and_the_value() -> None:
    for value in (0.0, -0.0, 0.8, 1e-300, 123456.789, -2.5):
        assert str(dec(value)) == str(Decimal(repr(value)))
        assert str(dec(value)) == str(dec(value))  # second call: from the cache
        assert text(value) == text(value)
    assert str(dec(-0.0)) == "-0.0"
    assert whole_units(30.0000001) == Decimal(30)
    assert whole_units(-0.0) == Decimal(0)


_NUMBERS = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from([0.0, -0.0, 0.1, 1.2, 1.5])


@given(_NUMBERS, st.integers(0, 8), st.integers(0, 400), st.sampled_from([0.0, 0.1, 0.25]))
def test_cached_expected_units_are_the_fresh_product(dose: float, doses: int, supply: int, tolerance: float) -> None:
    def fresh() -> tuple[str, str, str]:
        expected = Decimal(repr(dose)) * doses * supply
        low, high = Decimal(1) - Decimal(repr(tolerance)), Decimal(1) + Decimal(repr(tolerance))
        return str(expected), str(expected * low), str(expected * high)

    for _ in range(2):  # the second call answers from the cache
        expected, (low, high) = _expected_units(dose, doses, supply, tolerance)
        assert (str(expected), str(low), str(high)) == fresh()


@given(_NUMBERS, st.integers(1, 6), _NUMBERS, _NUMBERS)
def test_cached_limits_compare_as_fresh_decimals(first: float, doses: int, second: float, limit: float) -> None:
    rises = Decimal(repr(first)) >= Decimal("1.5") * Decimal(repr(second))
    above = Decimal(repr(first)) * doses > Decimal(repr(limit)) * Decimal(repr(second))
    for _ in range(2):
        assert _rises(first, second) is rises
        if second > 0:  # the rule compares only a positive dosing weight
            assert (_dose_above_limit(first, doses, second, limit) is not None) is above


@given(_NUMBERS | st.sampled_from([float("nan"), float("inf"), 29.9999995, 30.000001, 1e-7]))
def test_cached_billed_units_are_the_fresh_ones(units: float) -> None:
    exact = whole_units(units)
    whole = exact is not None and exact > 0 and exact == exact.to_integral_value()
    for _ in range(2):
        counted, is_whole = _billed_units(units)
        assert (str(counted), is_whole) == (str(exact), whole)


@given(_NUMBERS, st.sampled_from([None, "UN", "ME", "GR"]), _NUMBERS)
def test_cached_ndc_units_are_the_fresh_product(quantity: float, unit: str | None, strength: float) -> None:
    by_strength = unit in (None, "UN")
    factor = Decimal(repr(strength)) if by_strength else Decimal(1000) if unit == "GR" else Decimal(1)
    fresh = EXACT.multiply(Decimal(repr(quantity)), factor)  # exact: no default 28-digit rounding
    for _ in range(2):
        assert str(_ndc_units(quantity, unit, strength if by_strength else None)) == str(fresh)


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))])))
def test_time_ms_floors_as_the_division(moment: datetime) -> None:
    try:
        expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    except OverflowError:
        return
    assert time_ms(moment) == expected


def _checked(name: str) -> AvroCodec:
    codec = AvroCodec(name)
    codec._compiled = None  # the checked writer only
    return codec


def test_compiled_writer_writes_what_fastavro_writes() -> None:
    evaluator = Evaluator(load_packs(FIXTURES / "payer-config"), load_reference())
    fast, checked = AvroCodec("ClaimDecision"), _checked("ClaimDecision")
    bundles = [json.loads(raw)["bundle"] for raw in (FIXTURES / "bundles.jsonl").read_text().splitlines() if raw]
    for fields in bundles:
        bundle = Bundle.model_validate(fields)
        context = PatientContext.from_lists(bundle.prescriptions, bundle.labs, bundle.prior_claims)
        record = evaluator.decide(bundle.claim, context, Source("t", 3, 2**40), datetime.now(UTC)).to_dict()
        assert fast.encode(record) == checked.encode(record)
        assert fast._compiled is not None
        buffer = bytearray()
        fast._compiled(buffer, record)  # the decision took the compiled writer (no Unfit)
    schema_of = {"claim": "ClaimSubmitted", "prescription": "PrescriptionRecorded", "lab": "LabResultRecorded"}
    codecs = {kind: (AvroCodec(name), _checked(name)) for kind, name in schema_of.items()}
    for event in generate(30, seed=4).events:
        compiled, plain = codecs[event.kind]
        decoded = plain.decode(plain.encode(event.record))
        assert compiled.encode(decoded) == plain.encode(decoded)


@given(
    st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
    st.one_of(st.none(), st.text(max_size=10)),
    st.integers(min_value=-(2**31) - 2, max_value=2**31 + 2),
)
def test_compiled_writer_agrees_on_any_finding(evidence: dict[str, str], fix: str | None, line_number: int) -> None:
    finding = {
        "rule_id": "x",
        "family": "coding",
        "outcome": "HOLD",
        "message": "m",
        "evidence": evidence,
        "fix": fix,
        "expected_carc": None,
        "policy_ref": "payer",
    }
    record = {
        "decision_id": "d",
        "claim_id": "c",
        "claim_version": 1,
        "claim_event_id": None,
        "patient_id": "p",
        "decided_at": datetime(2026, 1, 1, tzinfo=UTC),
        "context_as_of": None,
        "outcome": "HOLD",
        "rule_pack": {"name": "n", "version": "v"},
        "worker_version": "w",
        "source": None,
        "findings": [],
        "lines": [{"line_number": line_number, "hcpcs_code": "J7507", "outcome": "HOLD", "findings": [finding]}],
    }
    outcomes = []
    for codec in (AvroCodec("ClaimDecision"), _checked("ClaimDecision")):
        try:
            outcomes.append(codec.encode(record))
        except EncodeError as error:
            outcomes.append(str(error))
    assert outcomes[0] == outcomes[1]


def test_shared_dates_are_equal_dates_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import date

    from worker.engine import records

    monkeypatch.setattr(records, "_dates", {})
    monkeypatch.setattr(records, "_MAX_SHARED", 3)
    days = [date(2026, 1, day) for day in range(1, 6)]
    shared = [records._shared_date(day) for day in days] + [records._shared_date_of(day.toordinal()) for day in days]
    assert shared == days + days
    assert records._shared_date(date(2026, 1, 1)) is shared[0]  # held: the same object
    assert len(records._dates) == 3  # the bound: later days are returned, not kept
