"""Reference data: the NDC crosswalk, LOINC groups and interacting drugs, loaded once.

The CSV files ship in `worker/engine/data/` with their source columns (where each fact comes from). A site
can point at a newer crosswalk (`--ndc-crosswalk FILE` / `NDC_CROSSWALK_FILE`) without a code change;
a file that lacks a required column or has a bad value fails at start, naming file, row and column.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property, lru_cache
from importlib.resources import files
from pathlib import Path

from worker.errors import ConfigError

CROSSWALK_COLUMNS = ("ndc11", "hcpcs", "strength_mg", "brand", "source")
LOINC_COLUMNS = ("loinc", "rule_group", "source")
DRUG_COLUMNS = ("drug", "rule_class", "source_for_interaction")

_SPACES = re.compile(r"\s")
_DIGITS = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit accepts other scripts
_TEN_DIGITS = re.compile(r"[0-9]{10}")


# A few thousand NDCs recur on every claim: normalize each once (bounded: input can be anything).
@lru_cache(maxsize=8192)
def normalize_ndc(ndc: str) -> str:
    """The NDC form of rules.md: the 11-digit 5-4-2 form without dashes where it is certain.

    Spaces are removed. A dashed 10-digit NDC as printed on packages (4-4-2, 5-3-2 or 5-4-1) gets a
    leading zero on its short segment: `0469-0617-73` -> `00469061773`, `55111-526-01` ->
    `55111052601`, `12345-6789-1` -> `12345678901`. Any other form only loses its dashes, so an
    undashed 10-digit NDC stays 10 digits (it is ambiguous; `ndc_candidates` lists what it could
    be) and is simply not found in the crosswalk.
    """
    compact = _SPACES.sub("", ndc)
    if "-" not in compact:
        return compact
    segments = compact.split("-")
    if len(segments) == 3 and all(_DIGITS.fullmatch(segment) for segment in segments):
        labeler, product, package = segments
        shape = (len(labeler), len(product), len(package))
        if shape == (4, 4, 2):
            return f"0{labeler}{product}{package}"
        if shape == (5, 3, 2):
            return f"{labeler}0{product}{package}"
        if shape == (5, 4, 1):
            return f"{labeler}{product}0{package}"
    return compact.replace("-", "")


def ndc_candidates(ndc: str) -> tuple[str, ...]:
    """The three 11-digit forms an undashed 10-digit NDC could be (4-4-2, 5-3-2, 5-4-1 padded);
    empty for anything else."""
    if not _TEN_DIGITS.fullmatch(ndc):
        return ()
    return (f"0{ndc}", f"{ndc[:5]}0{ndc[5:]}", f"{ndc[:9]}0{ndc[9:]}")


def normalize_drug(name: str) -> str:
    """Lower-case letters only: "St John's wort", "st johns wort" and "St. John's Wort" match."""
    return "".join(character for character in name.lower() if "a" <= character <= "z")


@dataclass(frozen=True, slots=True)
class NdcProduct:
    ndc11: str
    hcpcs: str
    strength_mg: float
    brand: bool
    ingredient: str
    formulation: str
    product: str
    source: str


@dataclass(frozen=True)
class ReferenceData:
    crosswalk: Mapping[str, NdcProduct]
    loinc_groups: Mapping[str, frozenset[str]]  # rule_group -> LOINC codes
    drug_classes: Mapping[str, frozenset[str]]  # rule_class -> normalized drug names
    crosswalk_source: str

    def product(self, ndc: str | None) -> NdcProduct | None:
        if not ndc:
            return None
        return self.crosswalk.get(normalize_ndc(ndc))

    def loincs(self, group: str) -> frozenset[str]:
        return self.loinc_groups.get(group, frozenset())

    @cached_property
    def group_of_loinc(self) -> Mapping[str, str]:
        return {code: group for group, codes in self.loinc_groups.items() for code in codes}

    def drugs(self, rule_class: str) -> frozenset[str]:
        return self.drug_classes.get(rule_class, frozenset())

    def drugs_of(self, rule_classes: tuple[str, ...]) -> frozenset[str]:
        """The drugs of several rule classes; the union is built once per set of classes."""
        unions = self._unions
        union = unions.get(rule_classes)
        if union is None:
            union = unions[rule_classes] = frozenset().union(*(self.drugs(name) for name in rule_classes))
        return union

    @cached_property
    def _unions(self) -> dict[tuple[str, ...], frozenset[str]]:
        return {}


def _read_csv(path: Path | str, text: str, required: Iterable[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(text.splitlines())
    missing = [column for column in required if column not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}")
    return list(reader)


def _parse_crosswalk(path: Path | str, text: str) -> dict[str, NdcProduct]:
    products: dict[str, NdcProduct] = {}
    for row_number, row in enumerate(_read_csv(path, text, CROSSWALK_COLUMNS), start=2):
        where = f"{path}: row {row_number}"
        ndc = normalize_ndc(row["ndc11"] or "")
        if not re.fullmatch(r"\d{11}", ndc):
            raise ConfigError(f"{where}, column ndc11: expected 11 digits, got {row['ndc11']!r}")
        try:
            strength = float(row["strength_mg"])
        except ValueError:
            raise ConfigError(f"{where}, column strength_mg: not a number: {row['strength_mg']!r}") from None
        if not math.isfinite(strength):  # "nan" and "inf" parse as floats; no rule can use them
            raise ConfigError(f"{where}, column strength_mg: not a finite number: {row['strength_mg']!r}")
        brand = (row["brand"] or "").strip().lower()
        if brand not in ("true", "false"):
            raise ConfigError(f"{where}, column brand: expected true or false, got {row['brand']!r}")
        if ndc in products:
            raise ConfigError(f"{where}, column ndc11: NDC {ndc} is listed twice")
        products[ndc] = NdcProduct(
            ndc11=ndc,
            hcpcs=(row["hcpcs"] or "").strip().upper(),
            strength_mg=strength,
            brand=brand == "true",
            ingredient=(row.get("ingredient") or "").strip().lower(),
            formulation=(row.get("formulation") or "").strip().upper(),
            product=(row.get("product") or "").strip(),
            source=row["source"] or "",
        )
    return products


def _group(rows: list[dict[str, str]], key: str, value: str) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = {}
    for row in rows:
        grouped.setdefault(row[key].strip(), set()).add(row[value].strip())
    return {name: frozenset(values) for name, values in grouped.items()}


def load_reference(crosswalk_file: Path | None = None) -> ReferenceData:
    """Load the shipped tables; `crosswalk_file` replaces the shipped NDC crosswalk."""
    if crosswalk_file is None:
        return _shipped_reference()
    try:
        text = crosswalk_file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{crosswalk_file}: cannot read NDC crosswalk: {error.strerror}") from None
    shipped = _shipped_reference()
    return ReferenceData(
        crosswalk=_parse_crosswalk(crosswalk_file, text),
        loinc_groups=shipped.loinc_groups,
        drug_classes=shipped.drug_classes,
        crosswalk_source=str(crosswalk_file),
    )


@cache
def _shipped_reference() -> ReferenceData:
    data = files("worker.engine") / "data"
    crosswalk_text = (data / "ndc_crosswalk.csv").read_text(encoding="utf-8")
    loinc_rows = _read_csv("loinc_labs.csv", (data / "loinc_labs.csv").read_text(encoding="utf-8"), LOINC_COLUMNS)
    drug_rows = _read_csv(
        "interacting_drugs.csv", (data / "interacting_drugs.csv").read_text(encoding="utf-8"), DRUG_COLUMNS
    )
    drug_classes: dict[str, set[str]] = {}
    for row in drug_rows:
        drug_classes.setdefault(row["rule_class"].strip(), set()).add(normalize_drug(row["drug"]))
    return ReferenceData(
        crosswalk=_parse_crosswalk("ndc_crosswalk.csv", crosswalk_text),
        loinc_groups=_group(loinc_rows, "rule_group", "loinc"),
        drug_classes={name: frozenset(drugs) for name, drugs in drug_classes.items()},
        crosswalk_source="shipped ndc_crosswalk.csv",
    )
