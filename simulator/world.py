"""The simulated world: provinces after the 2025 reform, their agencies, officers and people.

A province (two-level local government since 1 July 2025) has a public administration
service centre with branches, 10-20 provincial departments and agencies, post offices
acting as public service agents, and about a hundred communes, each with a one-stop desk,
the commune office and the commune police. Ministry-level procedures are decided by a
national agency. Officers are sized later (:func:`simulator.staffing.staff`) from the work
the province's dossiers bring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.catalogue import Catalogue

#: The 34 provinces and centrally-run cities after the 2025 merger: (code, name).
PROVINCES: tuple[tuple[str, str], ...] = (
    ("01", "Hà Nội"), ("79", "Hồ Chí Minh"), ("31", "Hải Phòng"), ("48", "Đà Nẵng"),
    ("92", "Cần Thơ"), ("46", "Huế"), ("22", "Quảng Ninh"), ("38", "Thanh Hóa"),
    ("40", "Nghệ An"), ("42", "Hà Tĩnh"), ("04", "Cao Bằng"), ("08", "Tuyên Quang"),
    ("15", "Lào Cai"), ("19", "Thái Nguyên"), ("25", "Phú Thọ"), ("24", "Bắc Ninh"),
    ("33", "Hưng Yên"), ("37", "Ninh Bình"), ("44", "Quảng Trị"), ("51", "Quảng Ngãi"),
    ("52", "Gia Lai"), ("56", "Khánh Hòa"), ("68", "Lâm Đồng"), ("66", "Đắk Lắk"),
    ("75", "Đồng Nai"), ("80", "Tây Ninh"), ("86", "Vĩnh Long"), ("82", "Đồng Tháp"),
    ("96", "Cà Mau"), ("91", "An Giang"), ("12", "Lai Châu"), ("11", "Điện Biên"),
    ("14", "Sơn La"), ("20", "Lạng Sơn"),
)  # fmt: skip

#: Short codes of unit types, used in agency ids.
UNIT_ABBREVIATIONS: dict[str, str] = {
    "one_stop_desk": "MC",
    "commune_office": "UB",
    "commune_police": "CAX",
    "land_registration_office": "VPDKDD",
    "tax_department": "THUE",
    "natural_resources_department": "SNNMT",
    "justice_department": "STP",
    "police": "CAT",
    "construction_department": "SXD",
    "finance_department": "STC",
    "health_department": "SYT",
    "home_affairs_department": "SNV",
    "industry_trade_department": "SCT",
    "social_insurance": "BHXH",
    "education_department": "SGDDT",
    "culture_department": "SVHTTDL",
    "science_technology_department": "SKHCN",
    "ethnic_religious_department": "SDTTG",
    "inspectorate": "TTRA",
    "post_office": "BD",
}
COMMUNE_UNITS: tuple[str, ...] = ("one_stop_desk", "commune_office", "commune_police")
#: Provincial units that exist whether or not a procedure of the catalogue uses them.
PROVINCE_UNITS: tuple[str, ...] = (
    "land_registration_office",
    "tax_department",
    "natural_resources_department",
    "justice_department",
    "police",
    "construction_department",
    "finance_department",
    "health_department",
    "home_affairs_department",
    "industry_trade_department",
    "social_insurance",
    "education_department",
    "culture_department",
    "science_technology_department",
    "ethnic_religious_department",
    "inspectorate",
)


@dataclass
class Province:
    """One province: its communes and agencies (officers are added by staffing)."""

    index: int
    code: str
    name: str
    #: commune codes, their branch area (0 = the centre's own area) and relative size.
    commune_codes: np.ndarray
    commune_branch: np.ndarray
    commune_weight: np.ndarray
    #: one row per agency: agency_id, unit_type, name, commune (-1 if provincial), level.
    agencies: pd.DataFrame
    #: agency index of the centre (0) and its branches (1..), by branch area.
    desk_of_area: np.ndarray
    #: agency index of each commune's desk, office and police.
    commune_agency: dict[str, np.ndarray]
    #: agency index of each provincial or national unit type.
    unit_agency: dict[str, int]
    post_offices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def n_agencies(self) -> int:
        return len(self.agencies)


def province_identity(index: int) -> tuple[str, str]:
    """Code and name of the ``index``-th province (cycled with a suffix past 34)."""
    code, name = PROVINCES[index % len(PROVINCES)]
    cycle = index // len(PROVINCES)
    return (code, name) if cycle == 0 else (f"{code}{cycle}", f"{name} ({cycle + 1})")


def build_province(
    index: int, catalogue: Catalogue, communes: int, branches: int, rng: np.random.Generator
) -> Province:
    """The agencies and communes of province ``index``."""
    code, name = province_identity(index)
    commune_codes = np.array([f"{code}{i + 1:03d}" for i in range(communes)], dtype=object)
    commune_branch = (
        rng.integers(0, branches + 1, size=communes)
        if branches
        else np.zeros(communes, dtype=np.int64)
    )
    commune_weight = rng.lognormal(0.0, 0.6, size=communes)
    commune_weight /= commune_weight.sum()
    rows: list[dict[str, object]] = []

    def add(agency_id: str, unit_type: str, label: str, commune: int, level: str) -> int:
        rows.append(
            {
                "agency_id": agency_id,
                "unit_type": unit_type,
                "name": label,
                "commune": commune,
                "level": level,
                "province": code,
            }
        )
        return len(rows) - 1

    desk_of_area = np.zeros(branches + 1, dtype=np.int64)
    desk_of_area[0] = add(
        f"{code}.TTPVHCC", "one_stop_desk", f"Trung tâm PVHCC {name}", -1, "province"
    )
    for b in range(1, branches + 1):
        desk_of_area[b] = add(
            f"{code}.TTPVHCC.CN{b:02d}",
            "one_stop_desk",
            f"Chi nhánh {b} Trung tâm PVHCC {name}",
            -1,
            "province",
        )
    units = list(PROVINCE_UNITS)
    for unit in catalogue.unit_types():
        if unit not in units and unit not in COMMUNE_UNITS and not unit.startswith("ministry_"):
            units.append(unit)
    unit_agency = {
        unit: add(f"{code}.{_abbr(unit)}", unit, f"{unit} {name}", -1, "province") for unit in units
    }
    for unit in catalogue.unit_types():
        if unit.startswith("ministry_"):
            short = unit.removeprefix("ministry_").upper()
            unit_agency[unit] = add(f"BO.{short}", unit, unit, -1, "ministry")
    post = [
        add(f"{code}.BD{b:02d}", "post_office", f"Bưu điện {b} {name}", -1, "province")
        for b in range(branches + 1)
    ]
    commune_agency = {unit: np.zeros(communes, dtype=np.int64) for unit in COMMUNE_UNITS}
    for i, ccode in enumerate(commune_codes):
        for unit in COMMUNE_UNITS:
            commune_agency[unit][i] = add(
                f"{ccode}.{_abbr(unit)}", unit, f"{unit} {ccode}", i, "commune"
            )
    return Province(
        index=index,
        code=code,
        name=name,
        commune_codes=commune_codes,
        commune_branch=commune_branch,
        commune_weight=commune_weight,
        agencies=pd.DataFrame(rows),
        desk_of_area=desk_of_area,
        commune_agency=commune_agency,
        unit_agency=unit_agency,
        post_offices=np.asarray(post, dtype=np.int64),
    )


def _abbr(unit: str) -> str:
    return UNIT_ABBREVIATIONS.get(unit, unit.upper()[:8])


# --- people ------------------------------------------------------------------------------


@dataclass
class People:
    """Applicants and intermediaries of one province, with their raw identifiers."""

    #: raw ids: 12-digit citizen ID numbers or 10-digit tax codes.
    citizen_ids: np.ndarray
    business_ids: np.ndarray
    #: intermediaries: raw id, kind ("broker" or "agent").
    intermediary_ids: np.ndarray
    intermediary_kind: np.ndarray


def citizen_numbers(province_code: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Realistic 12-digit citizen ID numbers.

    Province (3 digits), century and sex (1), birth year (2), serial (6).
    """
    prov = int(province_code[:2])
    century_sex = rng.choice([0, 1, 2, 3], size=n, p=[0.33, 0.33, 0.17, 0.17])
    year = np.where(century_sex >= 2, rng.integers(0, 20, n), rng.integers(40, 100, n))
    serial = rng.integers(0, 1_000_000, n)
    numbers = ((prov * 10 + century_sex) * 100 + year) * 1_000_000 + serial
    return np.char.zfill(numbers.astype(str), 12).astype(object)


def tax_codes(province_code: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Realistic 10-digit enterprise tax codes (province prefix, serial, check digit)."""
    prov = int(province_code[:2])
    serial = rng.integers(0, 10_000_000, n)
    check = rng.integers(0, 10, n)
    numbers = (prov * 10_000_000 + serial) * 10 + check
    return np.char.zfill(numbers.astype(str), 10).astype(object)


def build_people(
    province: Province,
    citizens: int,
    businesses: int,
    brokers: int,
    agents: int,
    rng: np.random.Generator,
) -> People:
    """Applicant pools and intermediaries (brokers are citizens, agents are businesses)."""
    broker_ids = citizen_numbers(province.code, brokers, rng)
    agent_ids = tax_codes(province.code, agents, rng)
    return People(
        citizen_ids=citizen_numbers(province.code, citizens, rng),
        business_ids=tax_codes(province.code, businesses, rng),
        intermediary_ids=np.concatenate([broker_ids, agent_ids]),
        intermediary_kind=np.array(["broker"] * brokers + ["agent"] * agents, dtype=object),
    )
