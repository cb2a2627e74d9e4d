"""Domain records, with exactly the field names of the event contract (docs: contract.md).

Input events (claims, prescriptions, lab results) are pydantic models: they validate both the JSON
bundles of offline evaluation and the dicts decoded from Avro, and a validation failure is a
contract violation (a malformed bundle or a dead letter). Output records (decision, line, finding,
source) are named tuples: the worker builds them itself, on the hot path, and they need no
validation; a frozen dataclass's `__init__` (one `object.__setattr__` per field) cost 2.4 µs of a
50 µs decision, a named tuple's 0.4.

Unknown extra fields are ignored, so upstream producers can add fields without breaking us.

The JSON path (offline bundles) validates in pydantic's strict mode (worker/offline/offline.py): nothing is
coerced, as contract.md requires. The Avro path validates what fastavro decoded, whose types the
schema already fixed. Both share the value limits below: integers the Avro schema's `int` could
not carry, non-finite numbers (NaN, infinities, and JSON numbers beyond a double, which parse as
infinities) and timestamps without the ISO 8601 `T` are malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

PayerType = Literal["MEDICARE", "MEDICAID", "COMMERCIAL", "OTHER"]
Entitlement = Literal["AGE", "DISABILITY", "ESRD_ONLY"]
Organ = Literal[
    "KIDNEY", "LIVER", "HEART", "LUNG", "HEART_LUNG", "PANCREAS", "INTESTINE", "BONE_MARROW", "ISLET", "OTHER"
]
DateSource = Literal["ORDERING_PHYSICIAN", "MEDICAL_RECORD", "PATIENT", "OTHER"]
AuthorizationStatus = Literal["APPROVED", "PENDING", "DENIED"]
NdcUnit = Literal["UN", "ME", "GR", "ML"]
PrescriptionStatus = Literal["ACTIVE", "COMPLETED", "STOPPED", "ON_HOLD", "ENTERED_IN_ERROR"]
Formulation = Literal["IMMEDIATE_RELEASE", "EXTENDED_RELEASE", "INJECTION", "SUSPENSION", "OTHER"]
Route = Literal["ORAL", "INTRAVENOUS", "SUBLINGUAL", "OTHER"]
LabStatus = Literal["FINAL", "PRELIMINARY", "CORRECTED", "AMENDED", "CANCELLED", "ENTERED_IN_ERROR"]
COUNTED_LAB_STATUSES = frozenset(("FINAL", "CORRECTED", "AMENDED"))

LineOutcome = Literal["ACCEPT", "HOLD", "DENY_RISK"]
FindingOutcome = Literal["HOLD", "DENY_RISK", "INFO"]
ClaimOutcome = Literal["ACCEPT", "HOLD", "DENY_RISK", "SKIPPED"]

J7507 = "J7507"


def _as_utc(moment: datetime) -> datetime:
    """Naive timestamps (and date-only values) are taken as UTC, so every time compares with every other."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# ISO 8601 date and time with `T` (pydantic alone would also take a space or `_`), optional seconds
# and fraction, optional UTC offset (a naive time is taken as UTC, below).
_ISO_8601 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?"
)


def _iso_8601(value: Any) -> Any:
    """A timestamp string must be ISO 8601; datetime objects (the Avro path) pass as they are.

    A before-validator sees JSON strings as Python input, which strict mode would refuse, so the
    string is parsed here (after the format check, `fromisoformat` reads exactly these forms).
    """
    if isinstance(value, str):
        if not _ISO_8601.fullmatch(value):
            raise ValueError("Input should be an ISO 8601 timestamp (YYYY-MM-DDTHH:MM:SS, with a UTC offset or Z)")
        return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(_iso_8601), AfterValidator(_as_utc)]

# Avro `int` is 32-bit (schemas/*.avsc): a bundle must not carry what the stream could not.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
Int32 = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX)]


class _Record(BaseModel):
    # frozen: records are shared between the context store and many decisions.
    # allow_inf_nan=False: NaN and infinities are malformed (the Avro decoder rejects them too).
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class Payer(_Record):
    payer_id: str
    payer_type: PayerType
    plan_id: str | None = None


class Coverage(_Record):
    part_a_at_transplant: bool | None = None
    part_b_active: bool | None = None
    entitlement: Entitlement | None = None
    part_b_id_enrolled: bool | None = None


class Transplant(_Record):
    organ: Organ
    transplant_date: date | None = None
    discharge_date: date | None = None
    facility: str | None = None
    date_source: DateSource | None = None


class PriorAuthorization(_Record):
    number: str
    status: AuthorizationStatus
    valid_from: date | None = None
    valid_to: date | None = None


class ClaimLine(_Record):
    line_number: Int32
    hcpcs_code: str
    modifiers: tuple[str, ...] = ()
    units: float
    charge_amount: str | None = None
    date_of_service: date
    ndc: str | None = None
    ndc_quantity: float | None = None
    ndc_unit: NdcUnit | None = None
    days_supply: Int32 | None = None
    prescription_id: str | None = None

    @property
    def is_j7507(self) -> bool:
        return self.hcpcs_code.strip().upper() == J7507


class Claim(_Record):
    """ClaimSubmitted."""

    event_id: str | None = None
    event_time: UtcDatetime | None = None
    claim_id: str
    claim_version: Int32
    patient_id: str
    payer: Payer
    coverage: Coverage | None = None
    transplant: Transplant | None = None
    diagnosis_codes: tuple[str, ...]
    prior_authorization: PriorAuthorization | None = None
    abn_on_file: bool = False
    billing_provider_npi: str | None = None
    ordering_provider_npi: str | None = None
    dispensing_pharmacy_npi: str | None = None
    lines: tuple[ClaimLine, ...]

    @cached_property
    def j7507_lines(self) -> tuple[ClaimLine, ...]:
        """Asked by the feed, the stream and the evaluator for every claim: computed once (so a
        `model_copy(update={"lines": ...})` would keep the old value: validate a new Claim instead)."""
        return tuple(line for line in self.lines if line.is_j7507)


class Prescription(_Record):
    """PrescriptionRecorded."""

    event_id: str | None = None
    event_time: UtcDatetime | None = None
    prescription_id: str
    patient_id: str
    status: PrescriptionStatus
    ingredient: str
    formulation: Formulation
    route: Route
    strength_mg: float | None = None
    dose_mg: float | None = None
    doses_per_day: Int32 | None = None
    days_supply: Int32 | None = None
    start_date: date
    end_date: date | None = None
    dosing_weight_kg: float | None = None
    prescriber_npi: str | None = None
    dispense_as_written: bool = False
    clinical_justification: str | None = None
    rxnorm_code: str | None = None
    ndc: str | None = None

    @cached_property
    def ingredient_key(self) -> str:
        return ingredient_key(self.ingredient)


@lru_cache(maxsize=4096)  # a small vocabulary read with every prescription; bounded: input can be anything
def ingredient_key(ingredient: str) -> str:
    """The ingredient as letters only, lower-case: how drug names are compared."""
    return "".join(character for character in ingredient.lower() if "a" <= character <= "z")


class LabResult(_Record):
    """LabResultRecorded."""

    event_id: str | None = None
    event_time: UtcDatetime | None = None
    observation_id: str
    patient_id: str
    loinc_code: str
    display: str | None = None
    value: float | None = None
    unit: str | None = None
    effective_time: UtcDatetime
    status: LabStatus

    @property
    def counted(self) -> bool:
        """Only final, corrected and amended results with a value count."""
        return self.status in COUNTED_LAB_STATUSES and self.value is not None

    @cached_property
    def effective_date(self) -> date:
        """The UTC calendar date of `effective_time` (a naive time is taken as UTC)."""
        moment = self.effective_time
        try:
            return moment.astimezone(UTC).date()
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00 has no UTC date: keep its local date
            return moment.date()


class Bundle(_Record):
    """One line of offline evaluation input: a claim and the patient context it is decided with."""

    claim: Claim
    prescriptions: tuple[Prescription, ...] = ()
    labs: tuple[LabResult, ...] = ()
    prior_claims: tuple[Claim, ...] = ()


# --- output records -------------------------------------------------------------------------------


class Finding(NamedTuple):
    rule_id: str
    family: str
    outcome: FindingOutcome
    message: str
    evidence: dict[str, str]
    fix: str | None = None
    expected_carc: str | None = None
    policy_ref: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "family": self.family,
            "outcome": self.outcome,
            "message": self.message,
            "evidence": dict(self.evidence),
            "fix": self.fix,
            "expected_carc": self.expected_carc,
            "policy_ref": self.policy_ref,
        }


class DecisionLine(NamedTuple):
    line_number: int
    hcpcs_code: str
    outcome: LineOutcome
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "line_number": self.line_number,
            "hcpcs_code": self.hcpcs_code,
            "outcome": self.outcome,
            "findings": [finding.to_dict() for finding in self.findings],
        }


@dataclass(frozen=True, slots=True)
class RulePackRef:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class Source(NamedTuple):
    """Where the claim was read from: topic, partition and offset."""

    topic: str
    partition: int
    offset: int


class Decision(NamedTuple):
    decision_id: str
    claim_id: str
    claim_version: int
    patient_id: str
    decided_at: datetime
    context_as_of: datetime | None
    outcome: ClaimOutcome
    rule_pack: RulePackRef
    worker_version: str
    source: Source | None
    lines: tuple[DecisionLine, ...]
    findings: tuple[Finding, ...] = ()
    claim_event_id: str | None = None
    rule_ids: tuple[str, ...] = ()  # the rules that fired, in order (derived from the lines)

    def to_dict(self) -> dict[str, Any]:
        """The contract's ClaimDecision shape (timestamps as datetime; JSON callers format them)."""
        return {
            "decision_id": self.decision_id,
            "claim_id": self.claim_id,
            "claim_version": self.claim_version,
            "patient_id": self.patient_id,
            "decided_at": self.decided_at,
            "context_as_of": self.context_as_of,
            "outcome": self.outcome,
            "rule_pack": {"name": self.rule_pack.name, "version": self.rule_pack.version},
            "worker_version": self.worker_version,
            "source": (
                None
                if self.source is None
                else {"topic": self.source.topic, "partition": self.source.partition, "offset": self.source.offset}
            ),
            "findings": [finding.to_dict() for finding in self.findings],
            "lines": [line.to_dict() for line in self.lines],
            "claim_event_id": self.claim_event_id,
        }
