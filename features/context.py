"""Context of a dossier that models condition on: what it is (procedure, channel), where
it started (agency, unit type) and when (month, weekday, hour). Known from its first event,
so the same at every cut; no outcome is read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features import schema as s
from features.dossiers import dossier_descriptors
from features.registry import FeatureSpec

__all__ = ["CATEGORICAL", "SPECS", "context_features"]

FAMILY = "context"
SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec(s.PROCEDURE_CODE, "The administrative procedure applied for", "category", FAMILY),
    FeatureSpec(
        s.CHANNEL, "How the dossier was submitted (online, in person, postal)", "category", FAMILY
    ),  # fmt: skip
    FeatureSpec("first_agency", "The unit that received the dossier", "category", FAMILY),
    FeatureSpec(
        "first_unit_type", "The kind of unit that received the dossier", "category", FAMILY
    ),  # fmt: skip
    FeatureSpec("start_month", "Month the dossier was received (1-12)", "count", FAMILY),
    FeatureSpec(
        "start_weekday", "Weekday the dossier was received (0 = Monday)", "count", FAMILY
    ),  # fmt: skip
    FeatureSpec("start_hour", "Hour of the day the dossier was received", "count", FAMILY),
)
#: the context columns that are categories (the rest are numbers).
CATEGORICAL = (s.PROCEDURE_CODE, s.CHANNEL, "first_agency", "first_unit_type")


def context_features(events: pd.DataFrame, agencies: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per dossier (index dossier_id): the columns of :data:`SPECS`.

    ``agencies`` (agency_id, unit_type) gives ``first_unit_type``; without it that column
    is missing values.
    """
    desc = dossier_descriptors(events)
    started = desc["started_at"]
    out = pd.DataFrame(index=desc.index)
    for column in (s.PROCEDURE_CODE, s.CHANNEL, "first_agency"):
        out[column] = desc[column].astype("string")
    unit = pd.Series(pd.NA, index=desc.index, dtype="string")
    if agencies is not None and len(agencies):
        types = agencies.drop_duplicates(s.AGENCY_ID).set_index(s.AGENCY_ID)["unit_type"]
        unit = desc["first_agency"].map(types.astype("string")).astype("string")
    out["first_unit_type"] = unit
    out["start_month"] = started.dt.month.to_numpy(dtype=np.int64)
    out["start_weekday"] = started.dt.day_of_week.to_numpy(dtype=np.int64)
    out["start_hour"] = started.dt.hour.to_numpy(dtype=np.int64)
    return out
