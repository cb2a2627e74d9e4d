"""Reference choices of the synthetic data: payers, pharmacies, transplant centers, codes and the catalogue.

Non-Medicare payer settings mirror the override files in `examples/payer-config/`; products and trough
targets come from the shipped crosswalk and the built-in packs, so the generator and the rules agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Literal

from worker.engine.reference import NdcProduct, load_reference
from worker.engine.rules.packs import PackSettings, load_built_in_packs


@dataclass(frozen=True)
class Payer:
    """A payer as the generator sees it. Non-Medicare settings mirror examples/payer-config/."""

    payer_id: str
    payer_type: Literal["MEDICARE", "MEDICAID", "COMMERCIAL"]
    share: float
    plan_ids: tuple[str, ...] = ()
    max_days_supply: int = 90  # Medicare: from 2025-01-01 (30 before)
    refill_window_days: int = 10
    mail_order_share: float = 0.0  # patients on 90-day fills where the limit allows
    requires_prior_auth: bool = False
    specialty_pharmacy_npis: tuple[str, ...] = ()
    lifetime_units_cap: float | None = None
    non_preferred_ndcs: tuple[str, ...] = ()

    @property
    def medicare(self) -> bool:
        return self.payer_type == "MEDICARE"

    @property
    def step_therapy(self) -> bool:
        # commercial-default and medicaid-default both set step_therapy_generic_first
        return not self.medicare

    @property
    def timely_filing_days(self) -> int:
        # the built-in packs' limits (rules.md): one year for Medicare and Medicaid, 180 days commercial
        return 180 if self.payer_type == "COMMERCIAL" else 365

    def days_supply_limit(self, date_of_service: date) -> int:
        if self.medicare and date_of_service < date(2025, 1, 1):
            return 30
        return self.max_days_supply


def npi(base: str) -> str:
    """A 10-digit NPI with a valid check digit (Luhn over the 80840 prefix, as CMS specifies)."""
    total = 0
    for position, char in enumerate(reversed("80840" + base)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return base + str((10 - total % 10) % 10)


SPECIALTY_PHARMACY_NPIS = (npi("174205938"), npi("183610472"))
RETAIL_PHARMACIES = tuple(
    (npi(base), npi(billing))
    for base, billing in (
        ("102938475", "102938476"),
        ("113847562", "113847563"),
        ("124756389", "124756390"),
        ("135620947", "135620948"),
        ("146573829", "146573830"),
        ("157382946", "157382947"),
    )
)
SPECIALTY_BILLING_NPIS = {SPECIALTY_PHARMACY_NPIS[0]: npi("174205939"), SPECIALTY_PHARMACY_NPIS[1]: npi("183610473")}
TRANSPLANT_CENTERS = tuple(
    (center, tuple(npi(base) for base in prescribers))  # transplant center, its prescribers' NPIs
    for center, prescribers in (
        ("Lakeside University Transplant Center", ("160293847", "160293848", "160293849")),
        ("St. Brendan Medical Center", ("171029384", "171029385")),
        ("Mercy Heights Hospital", ("182736450", "182736451")),
        ("Riverbend Regional Medical Center", ("193847561", "193847562")),
        ("Northfield Transplant Institute", ("108273645", "108273646", "108273647")),
    )
)
# Example formularies (examples/payer-config/): Strides' 0.5 mg capsules are off Texas Medicaid's,
# Prograf unit-dose packs (meant for institutions) off Blue Harbor's
TX_NON_PREFERRED = ("64380072001", "64380072006")
UNIT_DOSE_PACKS = ("00469061711", "00469065711")

PAYERS = (
    Payer("MEDICARE-DME-JA", "MEDICARE", 0.11, mail_order_share=0.3),
    Payer("MEDICARE-DME-JB", "MEDICARE", 0.12, mail_order_share=0.3),
    Payer("MEDICARE-DME-JC", "MEDICARE", 0.15, mail_order_share=0.3),
    Payer("MEDICARE-DME-JD", "MEDICARE", 0.12, mail_order_share=0.3),
    Payer(
        "ACME-HEALTH",
        "COMMERCIAL",
        0.13,
        ("ACME-GOLD-PPO", "ACME-SILVER-HMO"),
        max_days_supply=30,
        requires_prior_auth=True,
        specialty_pharmacy_npis=SPECIALTY_PHARMACY_NPIS,
    ),
    Payer(
        "BLUE-HARBOR-PPO",
        "COMMERCIAL",
        0.15,
        ("BH-PPO-2025",),
        refill_window_days=7,
        mail_order_share=0.4,
        non_preferred_ndcs=UNIT_DOSE_PACKS,
    ),
    Payer("SUMMIT-CARE", "COMMERCIAL", 0.07, ("SUMMIT-BASIC",), lifetime_units_cap=1000, mail_order_share=0.4),
    Payer("STATE-MEDICAID-TX", "MEDICAID", 0.09, ("TX-STAR",), max_days_supply=30, non_preferred_ndcs=TX_NON_PREFERRED),
    Payer("STATE-MEDICAID-OH", "MEDICAID", 0.06, ("OH-MEDICAID",), max_days_supply=30, requires_prior_auth=True),
)

ORGANS = (("KIDNEY", "LIVER", "HEART", "LUNG", "HEART_LUNG", "PANCREAS", "INTESTINE"), (60, 25, 8, 5, 0.5, 1, 0.5))
ENTITLEMENTS_KIDNEY = (("AGE", "ESRD_ONLY", "DISABILITY"), (0.5, 0.3, 0.2))
ENTITLEMENTS_OTHER = (("AGE", "DISABILITY"), (0.75, 0.25))
DIAGNOSIS = {
    "KIDNEY": "Z94.0",
    "HEART": "Z94.1",
    "LUNG": "Z94.2",
    "HEART_LUNG": "Z94.3",
    "LIVER": "Z94.4",
    "INTESTINE": "Z94.82",
    "PANCREAS": "Z94.83",
}
REJECTION_CODES = {"KIDNEY": "T86.11", "LIVER": "T86.41", "HEART": "T86.21", "LUNG": "T86.811"}
COMORBIDITIES = ("I10", "E11.9", "D84.821", "Z79.899", "E78.5", "N18.30")
UNCOVERED_DIAGNOSES = ("Z94.5", "Z94.6", "Z94.7", "Z79.899")  # skin, bone, cornea; long-term drug use
# mg/kg/day of tacrolimus (label starting doses, then lower maintenance), by phase
DOSE_PER_KG = {
    "KIDNEY": ((0.10, 0.15), (0.04, 0.09)),
    "LIVER": ((0.08, 0.12), (0.03, 0.07)),
    "HEART": ((0.06, 0.075), (0.04, 0.07)),
    "LUNG": ((0.06, 0.075), (0.05, 0.08)),
}
# Trough values a stable patient shows (ng/mL), well inside the packs' trough_targets: (early, later)
TROUGH_USUAL = {
    "KIDNEY": ((6.0, 14.0), (5.0, 11.0)),
    "HEART": ((11.0, 16.0), (6.0, 12.0)),
    "LUNG": ((10.5, 14.0), (8.5, 11.5)),
    "HEART_LUNG": ((10.5, 14.0), (8.5, 11.5)),
}
DEFAULT_TROUGH_USUAL = ((6.0, 12.0), (6.0, 12.0))

TROUGH = ("11253-2", "Tacrolimus [Mass/volume] in Blood", "ng/mL")
TROUGH_BY_NAME = ("77348-1", "Tacrolimus [Mass/volume] in Blood --trough", "ng/mL")
CREATININE = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL")
EGFR = (
    ("98979-8", "eGFR (CKD-EPI 2021)", "mL/min/{1.73_m2}"),
    ("62238-1", "eGFR (CKD-EPI 2009)", "mL/min/{1.73_m2}"),
    ("33914-3", "eGFR (MDRD)", "mL/min/{1.73_m2}"),
)
HEPATIC = (
    ("1742-6", "ALT [Enzymatic activity/volume] in Serum or Plasma", "U/L", 12, 48, 0),
    ("1920-8", "AST [Enzymatic activity/volume] in Serum or Plasma", "U/L", 14, 42, 0),
    ("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.3, 1.2, 1),
)
POTASSIUM = ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L")

# Strong CYP3A4 inhibitors and inducers, with a typical course length in days
INTERACTING_COURSES = (
    ("voriconazole", 28),
    ("posaconazole", 28),
    ("itraconazole", 21),
    ("clarithromycin", 10),
    ("rifampin", 120),
    ("carbamazepine", 180),
)


@dataclass(frozen=True)
class Catalog:
    """What the generator draws on: J7507 products and their look-alikes from the shipped NDC
    crosswalk, and the trough targets of the built-in packs (the same in all three)."""

    generics: dict[float, tuple[str, ...]]  # strength -> non-brand J7507 NDCs
    brands: dict[float, tuple[str, ...]]
    lookalikes: dict[float, tuple[str, ...]]  # strength -> ER tacrolimus NDCs billed under other codes
    known: frozenset[str]
    brand_ndcs: frozenset[str]
    trough_targets: PackSettings

    @classmethod
    def load(cls) -> Catalog:
        products = sorted(load_reference().crosswalk.values(), key=lambda product: product.ndc11)

        def by_strength(selected: list[NdcProduct]) -> dict[float, tuple[str, ...]]:
            grouped: dict[float, list[str]] = defaultdict(list)
            for product in selected:
                grouped[product.strength_mg].append(product.ndc11)
            return {strength: tuple(ndcs) for strength, ndcs in grouped.items()}

        j7507 = [product for product in products if product.hcpcs == "J7507"]
        return cls(
            generics=by_strength([product for product in j7507 if not product.brand]),
            brands=by_strength([product for product in j7507 if product.brand]),
            lookalikes=by_strength(
                [
                    product
                    for product in products
                    if product.ingredient == "tacrolimus"
                    and product.formulation == "EXTENDED_RELEASE"
                    and product.hcpcs != "J7507"
                ]
            ),
            known=frozenset(product.ndc11 for product in products),
            brand_ndcs=frozenset(product.ndc11 for product in j7507 if product.brand),
            trough_targets=load_built_in_packs()["medicare-dme"].settings,
        )

    def typo_of(self, ndc: str) -> str:
        """The NDC with two adjacent product-code digits swapped, as keyed in by hand: unknown to the crosswalk."""
        for position in range(5, 8):
            typo = ndc[:position] + ndc[position + 1] + ndc[position] + ndc[position + 2 :]
            if typo != ndc and typo not in self.known:
                return typo
        return ndc[:5] + "9999" + ndc[9:]
