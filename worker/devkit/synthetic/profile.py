"""A synthetic patient's profile: payer, organ, transplant dates, providers, products and doses."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

from worker.devkit.synthetic.model import Component, Ids, Record, Regimen, SyntheticEvent, ckd_epi_egfr, coverage_end
from worker.devkit.synthetic.reference import (
    COMORBIDITIES,
    DIAGNOSIS,
    DOSE_PER_KG,
    EGFR,
    ENTITLEMENTS_KIDNEY,
    ENTITLEMENTS_OTHER,
    ORGANS,
    PAYERS,
    REJECTION_CODES,
    RETAIL_PHARMACIES,
    SPECIALTY_BILLING_NPIS,
    TRANSPLANT_CENTERS,
    TROUGH,
    TROUGH_BY_NAME,
    Catalog,
)

SPAN_DAYS = 182  # each patient's claims fall within this many days from `start`
# Payer problems apply to fewer patients (non-Medicare plans with the matching setting): weigh up
FAMILY_WEIGHT = {"coding": 1.0, "order": 1.0, "coverage": 1.0, "overlap": 0.8, "labs": 1.0, "payer": 2.0}


class PatientProfile:
    """Who the patient is: payer, organ, transplant dates, providers, products, doses."""

    def __init__(self, rng: random.Random, ids: Ids, catalog: Catalog, start: date, usage: Counter[str]) -> None:
        self.rng = rng
        self.usage = usage  # scenarios chosen so far in the dataset
        self.ids = ids
        self.catalog = catalog
        self.start = start
        self.last_day = start + timedelta(days=SPAN_DAYS)
        self.patient_id = ids.next("PT")
        self.events: list[tuple[int, SyntheticEvent]] = []
        self.planted: dict[tuple[str, int], frozenset[str]] = {}
        self.prescriptions: dict[str, Record] = {}  # current state per prescription_id
        self.claim_units: dict[str, float] = {}  # J7507 units per claim id (latest version), for caps
        self._profile()

    # --- profile --------------------------------------------------------------------------------

    def _profile(self) -> None:
        rng = self.rng
        self.payer = rng.choices(PAYERS, [payer.share for payer in PAYERS])[0]
        self.plan_id = rng.choice(self.payer.plan_ids) if self.payer.plan_ids else None
        self.organ = rng.choices(*ORGANS)[0]
        self.female = rng.random() < 0.4
        self.entitlement: str | None = None
        if self.payer.medicare:  # many kidney recipients have Medicare through ESRD alone
            entitlements = ENTITLEMENTS_KIDNEY if self.organ == "KIDNEY" else ENTITLEMENTS_OTHER
            self.entitlement = rng.choices(*entitlements)[0]
        self.age = rng.randint(65, 86) if self.entitlement == "AGE" else rng.randint(22, 64)
        self.weight_kg = round(min(140.0, max(42.0, rng.gauss(80.0 if not self.female else 68.0, 15.0))), 1)
        self._transplant_dates()
        center, prescribers = rng.choice(TRANSPLANT_CENTERS)
        self.facility = center
        self.prescriber_npi = rng.choice(prescribers)
        if self.payer.specialty_pharmacy_npis:
            self.pharmacy_npi = rng.choice(self.payer.specialty_pharmacy_npis)
            self.billing_npi = SPECIALTY_BILLING_NPIS[self.pharmacy_npi]
        else:
            self.pharmacy_npi, self.billing_npi = rng.choice(RETAIL_PHARMACIES)
        self.date_source = "ORDERING_PHYSICIAN" if rng.random() < 0.9 else "MEDICAL_RECORD"
        self.diagnosis_codes = self._diagnoses()
        self.trough_code = TROUGH if rng.random() < 0.85 else TROUGH_BY_NAME
        self.egfr_code = rng.choices(EGFR, [0.8, 0.1, 0.1])[0]
        self.creatinine_base = self._creatinine_base()
        self.prior_auth: Record | None = None
        if self.payer.requires_prior_auth:
            valid_from = self.first_dos - timedelta(days=rng.randint(5, 60))
            self.prior_auth = {
                "number": f"PA{rng.randint(10**8, 10**9 - 1)}",
                "status": "APPROVED",
                "valid_from": valid_from.isoformat(),
                "valid_to": (valid_from + timedelta(days=365)).isoformat(),
            }
        # Brand Prograf: Medicare patients by habit; others only dispensed as written, with a reason
        self.daw: bool = not self.payer.medicare and rng.random() < 0.12
        self.brand = self.daw or (self.payer.medicare and rng.random() < 0.35)
        self.products = self._products()
        self.cadence = 30
        if rng.random() < self.payer.mail_order_share:
            self.cadence = 90
        self.mycophenolate = self._mycophenolate()
        # more rules apply to some patients: Medicare's coverage rules, the liver recipients' liver tests
        self.family_weights = dict(FAMILY_WEIGHT)
        if self.payer.medicare:
            self.family_weights["coverage"] *= 1.5
        if self.organ == "LIVER":
            self.family_weights["labs"] *= 2

    def _transplant_dates(self) -> None:
        rng, start = self.rng, self.start
        self.in_window = False
        self.esrd_end: date | None = None
        self.part_b_id_from: date | None = None
        draw = rng.random()
        if self.entitlement == "ESRD_ONLY":
            if draw < 0.45:  # the 36 months run out during the simulation
                ends = start + timedelta(days=rng.randint(20, 150))
                month_index = ends.year * 12 + ends.month - 1 - 36
                year, month = divmod(month_index, 12)
                transplant = date(year, month + 1, rng.randint(1, 28))
            elif draw < 0.75:  # ran out long ago: on Part B-ID since
                transplant = start - timedelta(days=rng.randint(1130, 3600))
            else:
                transplant = start - timedelta(days=rng.randint(60, 900))
            self.esrd_end = coverage_end(transplant)
            if self.esrd_end < start:
                self.part_b_id_from = max(date(2023, 1, 1), self.esrd_end + timedelta(days=1))
            elif self.esrd_end <= self.last_day:
                # most enroll in Part B-ID in time; some lapse for a month or two (natural denials)
                lapse = 0 if rng.random() < 0.6 else rng.randint(25, 80)
                self.part_b_id_from = self.esrd_end + timedelta(days=1 + lapse)
        elif draw < 0.08:
            self.in_window = True
            transplant = start + timedelta(days=rng.randint(0, 100))
        elif draw < 0.25:
            transplant = start - timedelta(days=rng.randint(1, 365))
        elif draw < 0.80:
            transplant = start - timedelta(days=rng.randint(366, 5 * 365))
        else:
            transplant = start - timedelta(days=rng.randint(5 * 365, 20 * 365))
        self.transplant_date = transplant
        self.discharge_date = transplant + timedelta(days=rng.randint(5, 16))
        if self.in_window:
            self.history_start = self.discharge_date - timedelta(days=4)
            self.first_dos = self.discharge_date
        else:
            self.history_start = start + timedelta(days=rng.randint(0, 10))
            self.first_dos = max(self.discharge_date, self.history_start + timedelta(days=rng.randint(2, 25)))

    def _diagnoses(self) -> list[str]:
        rng = self.rng
        codes = [DIAGNOSIS[self.organ]]
        if self.organ in REJECTION_CODES and rng.random() < 0.05:
            codes.append(REJECTION_CODES[self.organ])
        codes += rng.sample(COMORBIDITIES, rng.choice((0, 0, 1, 2)))
        if rng.random() < 0.15:  # some billing systems drop the dot
            codes = [code.replace(".", "") for code in codes]
        return codes

    def _creatinine_base(self) -> float:
        low, high = (0.9, 1.9) if self.organ == "KIDNEY" else (0.7, 1.4)
        base = round(self.rng.uniform(low, high), 2)
        # keep a stable patient's eGFR clear of the < 30 rule even on a high day
        while base > 0.5 and ckd_epi_egfr(base * 1.08, self.age, self.female) < 33:
            base = round(base - 0.1, 2)
        return base

    def _products(self) -> dict[float, str]:
        """The NDC dispensed for each capsule strength the patient may take."""
        rng, catalog, avoid = self.rng, self.catalog, self.payer.non_preferred_ndcs
        products: dict[float, str] = {}
        for table, use in ((catalog.generics, True), (catalog.brands, self.brand or self.payer.medicare)):
            for strength, ndcs in table.items():
                allowed = [ndc for ndc in ndcs if ndc not in avoid]
                # generics first; brand for every strength if the patient takes brand, else where no generic exists
                if use and allowed and (self.brand or strength not in products):
                    products[strength] = rng.choice(allowed)
        return products

    def _mycophenolate(self) -> tuple[str, float, str, float] | None:
        """(ingredient, mg per dose twice daily, HCPCS, mg per HCPCS unit) or None."""
        draw = self.rng.random()
        if draw < 0.75:
            return "mycophenolate mofetil", self.rng.choice((500.0, 750.0, 1000.0)), "J7517", 250.0
        if draw < 0.85:
            return "mycophenolic acid", self.rng.choice((360.0, 720.0)), "J7518", 180.0
        return None

    # --- dosing -------------------------------------------------------------------------------------

    def _early(self, day: date) -> bool:
        return (day - self.transplant_date).days < 90

    def _dose_for(self, day: date) -> float:
        """mg per administration (twice daily) for the phase after transplant, in 0.5 mg steps."""
        early, later = DOSE_PER_KG.get(self.organ, DOSE_PER_KG["LIVER"])
        low, high = early if self._early(day) else later
        daily = self.weight_kg * self.rng.uniform(low, high)
        return max(0.5, round(daily) / 2)

    def _regimen(self, dose_mg: float, start_date: date, announced: date) -> Regimen:
        strengths = self.products
        five = 5.0 in strengths
        whole, half = int(dose_mg), dose_mg - int(dose_mg)
        parts: list[tuple[float, float]] = []
        if five and whole >= 5 and not half:
            parts.append((5.0, float(whole // 5 * 5)))
            if whole % 5:
                parts.append((1.0, float(whole % 5)))
        elif half and whole <= 2 and self.rng.random() < 0.4:
            parts.append((0.5, dose_mg))  # all 0.5 mg capsules
        else:
            if whole:
                parts.append((1.0, float(whole)))
            if half:
                parts.append((0.5, 0.5))
        components = tuple(
            Component(strength, dose, strengths[strength], self.ids.next("RX")) for strength, dose in parts
        )
        return Regimen(components, start_date, announced, self.weight_kg)

    # --- plan ----------------------------------------------------------------------------------------

    def non_preferred_for(self, strength: float) -> str | None:
        """A non-preferred NDC of the payer's formulary with this strength, if any."""
        for ndc in self.payer.non_preferred_ndcs:
            if self._product_strength(ndc) == strength and ndc != self.products.get(strength):
                return ndc
        return None

    def _product_strength(self, ndc: str) -> float | None:
        for table in (self.catalog.generics, self.catalog.brands):
            for strength, ndcs in table.items():
                if ndc in ndcs:
                    return strength
        return None

    @staticmethod
    def other_strengths(strength: float) -> tuple[float, ...]:
        return (1.0,) if strength != 1.0 else (0.5,)
