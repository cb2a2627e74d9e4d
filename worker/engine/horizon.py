"""One patient's record (`PatientRecord`) and the horizon (`Horizon`) that bounds it.

The record holds every version the stream has read for a patient and builds the view a claim sees
(`PatientRecord.as_of`); `prune` drops what no claim within its filing limit can reach, and says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from operator import itemgetter

from worker.engine.claim_table import ClaimTable
from worker.engine.context import PatientContext
from worker.engine.lab_table import LabTable
from worker.engine.records import (
    _DAY_MS,
    _EPOCH_ORDINAL,
    NO_EXPIRED_CLAIMS,
    LabFacts,
    PriorClaim,
    PriorLine,
    RxFacts,
)
from worker.engine.rx_table import RxTable

TACROLIMUS_LEVEL_GROUP = "tacrolimus_level"  # loinc_labs.csv rule_group of tacrolimus levels
# Claims reach the worker nearly, not exactly, in time order. A claim up to this much older (record
# time, filing date) than its patient's newest decided claim is still decided exactly as with an
# unbounded context; the horizon keeps that much more.
OUT_OF_ORDER_SLACK = timedelta(days=7)
PRUNE_EVERY = timedelta(days=7)  # a patient's context is pruned when its filing dates moved this much
_SLACK_MS = OUT_OF_ORDER_SLACK // timedelta(milliseconds=1)
# The views' orders, as C-level key functions: a lambda per item was 40% of sorting a patient's labs.
_BY_SEQ = itemgetter(RxFacts._fields.index("seq"))
_BY_EFFECTIVE_TIME = itemgetter(LabFacts._fields.index("effective_ms"), LabFacts._fields.index("seq"))


# --- the horizon --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Horizon:
    """How far back a claim within its filing limit can reach, over every pack the worker uses."""

    timely_filing_days: int
    lab_lookback_days: int


def widest(first: Horizon, second: Horizon) -> Horizon:
    """A context horizon that serves both configurations (each claim keeps what either could need)."""
    return Horizon(
        timely_filing_days=max(first.timely_filing_days, second.timely_filing_days),
        lab_lookback_days=max(first.lab_lookback_days, second.lab_lookback_days),
    )


# --- one patient --------------------------------------------------------------------------------


class PatientRecord:
    """One patient's versioned prescriptions and labs, prior claims and horizon bookkeeping."""

    __slots__ = (
        "claims",
        "decided_ms",
        "expired",
        "filed_on",
        "labs",
        "newest_ms",
        "prescriptions",
        "pruned_on",
    )

    def __init__(self) -> None:
        self.prescriptions = RxTable()
        self.labs = LabTable()
        self.claims = ClaimTable()
        self.expired = NO_EXPIRED_CLAIMS
        self.newest_ms: int | None = None  # newest record time of any context version held
        self.decided_ms: int | None = None  # newest record time of a claim decided (late context)
        self.filed_on: date | None = None  # newest filing date of a claim (the horizon's reference)
        self.pruned_on: date | None = None  # the filing date the last prune was made for

    # --- writes ---

    def _touch(self, time: int | None) -> None:
        if time is not None and (self.newest_ms is None or time > self.newest_ms):
            self.newest_ms = time

    def add_prescription(self, version: RxFacts) -> int:
        """Returns 1 when the prescription id is new."""
        self._touch(version.time)
        return self.prescriptions.add(version)

    def add_lab(self, version: LabFacts) -> int:
        """Returns 1 when the observation id is new."""
        self._touch(version.time)
        return self.labs.add(version)

    def add_claim(self, claim: PriorClaim) -> int:
        """Keep the highest version of each claim; returns 1 when the claim id is new."""
        return self.claims.add(claim)

    def forget_claims(self) -> None:
        """Drop the claim history and what was derived from it (a revoked claims partition)."""
        self.claims.clear()
        self.expired = NO_EXPIRED_CLAIMS
        self.decided_ms = None
        self.filed_on = None
        self.pruned_on = None

    def is_late(self, time: int | None) -> bool:
        """Late context: no later than a claim of this patient that was already decided."""
        return time is not None and self.decided_ms is not None and time <= self.decided_ms

    # --- reads ---

    def as_of(self, as_of: int | None) -> PatientContext:
        """The context a claim with record time `as_of` sees (None: everything held).

        Built per call, not cached: in the stream every decided claim changes its patient's history,
        so a cached view would never be read twice and would only hold memory between claims."""
        if as_of is None or self.newest_ms is None or as_of >= self.newest_ms:
            return self._build(None)  # everything held is visible: no time filter to apply
        return self._build(as_of)

    def _build(self, as_of: int | None) -> PatientContext:
        prescriptions = self.prescriptions.visible(as_of)
        prescriptions.sort(key=_BY_SEQ)
        labs = self.labs.visible(as_of)
        labs.sort(key=_BY_EFFECTIVE_TIME)
        lines = self.claims.lines()
        return PatientContext(prescriptions, labs, lines, self.expired)

    # --- the horizon ---

    def prune(self, horizon: Horizon, settled: int | None, group_of: Mapping[str, str]) -> dict[str, int]:
        """Drop what no claim within its filing limit, filed on or after `self.filed_on`, can need.

        `group_of` maps LOINC codes to rule groups. `settled`: the newest decided claim's record time;
        later claims are at or after it (less `OUT_OF_ORDER_SLACK`), so versions up to that are folded.
        With D0 = filed_on − the slack − the widest timely_filing_days (the earliest date of service
        such a claim can have), this keeps:

        - labs with an effective date on or after D0 − the widest lab_lookback_days (every lab
          window), and the newest counted tacrolimus level before that (`interacting-drug-without-
          level` looks back to a drug's start date);
        - prescriptions that can be active on D0 or later, or were recorded on or after D0 (a line
          may name one whatever its status);
        - prior claims with a line on or after D0 or whose supply runs past D0 (`duplicate-line`,
          `early-refill`); the others go into running totals (`ExpiredClaims`);
        - every version not yet settled, so context read ahead of a claim stays invisible to it.

        Returns how many entries of each kind were dropped (a plain dict: a `Counter` per claim, and
        subtracting it, cost more than some of the prunes).
        """
        if self.filed_on is None:
            return {}
        # A prune walks everything the patient holds: do it once a week of filing dates, not per claim
        # (keeping a few days more than needed changes no decision).
        if self.pruned_on is not None and self.filed_on - self.pruned_on < PRUNE_EVERY:
            return {}
        self.pruned_on = self.filed_on
        settled = None if settled is None else settled - _SLACK_MS
        try:
            earliest_service = self.filed_on - OUT_OF_ORDER_SLACK - timedelta(days=horizon.timely_filing_days)
            earliest_lab = earliest_service - timedelta(days=horizon.lab_lookback_days)
        except OverflowError:
            return {}
        # Midnight (UTC) of the earliest date of service, in epoch milliseconds: compared with each
        # prescription's recorded time as integers, without a datetime per prescription.
        service_ms = (earliest_service.toordinal() - _EPOCH_ORDINAL) * _DAY_MS
        dropped = {
            "prescriptions": self.prescriptions.prune(
                settled,
                lambda rx: _rx_expired(rx, earliest_service, service_ms),
                lambda status, end_date: not _can_be_active(status, end_date, earliest_service),
            ),
            "labs": self.labs.prune(earliest_lab, settled, lambda loinc: group_of.get(loinc) == TACROLIMUS_LEVEL_GROUP),
            "prior_claims": 0,
        }
        # A claim with a line on or after the earliest date of service is never expired (`_line_expired`).
        for claim in self.claims.drop(lambda claim: _claim_expired(claim, earliest_service), earliest_service):
            self.expired = self.expired.plus(claim)
            dropped["prior_claims"] += 1
        return dropped


def _rx_expired(rx: RxFacts, earliest_service: date, service_ms: int) -> bool:
    """Can no claim still within its filing limit reach `rx`? `service_ms`: midnight UTC of
    `earliest_service` in epoch milliseconds."""
    if _can_be_active(rx.status, rx.end_date, earliest_service):
        return False
    recorded = rx.event_ms if rx.event_ms is not None else rx.time
    return recorded is not None and recorded < service_ms


def _can_be_active(status: str, end_date: date | None, earliest_service: date) -> bool:
    """Can a prescription of this status and end date be active on `earliest_service` or later?"""
    return status in ("ACTIVE", "COMPLETED") and (end_date is None or end_date >= earliest_service)


def _claim_expired(claim: PriorClaim, earliest_service: date) -> bool:
    # A loop, not all() over a generator: this runs for every held claim of every prune.
    for prior in claim:  # noqa: SIM110
        if not _line_expired(prior, earliest_service):
            return False
    return True


def _line_expired(line: PriorLine, earliest_service: date) -> bool:
    if line.date_of_service >= earliest_service:
        return False
    try:
        supply_end = line.date_of_service + timedelta(days=max(line.days_supply or 0, 0))
    except OverflowError:
        return False
    return supply_end <= earliest_service
