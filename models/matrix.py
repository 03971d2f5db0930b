"""The model matrix: which columns a model reads, in which order, and the categories of
each categorical column, fixed at fit time so that scoring maps any input onto the same
codes (an unseen category becomes missing, never a new code)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features import schema as s

__all__ = ["FeatureMatrix", "MissingFeatureError"]


class MissingFeatureError(s.GiamSatError, KeyError):
    """A table lacks a column the fitted model reads."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FeatureMatrix:
    """Columns (numeric first, then categorical) and the categories of the latter."""

    numeric: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categories]

    @classmethod
    def fit(
        cls,
        table: pd.DataFrame,
        *,
        exclude: Iterable[str] = (),
        categorical: Iterable[str] = (),
        max_categories: int = 500,
    ) -> FeatureMatrix:
        """Numeric columns of ``table`` and the named categorical ones, minus ``exclude``.

        A categorical column keeps its ``max_categories`` most frequent values."""
        skip = set(exclude)
        cats = [c for c in categorical if c in table and c not in skip]
        numeric = [
            c
            for c in table.columns
            if c not in skip and c not in cats and pd.api.types.is_numeric_dtype(table[c])
            and not pd.api.types.is_bool_dtype(table[c])
        ]  # fmt: skip
        categories = {}
        for c in cats:
            counts = table[c].astype("string").value_counts(dropna=True)
            categories[c] = tuple(sorted(counts.index[:max_categories].astype(str)))
        return cls(tuple(numeric), categories)

    def transform(self, table: pd.DataFrame) -> pd.DataFrame:
        """The matrix of ``table``: float64 numeric columns, fixed categoricals."""
        missing = [c for c in self.columns if c not in table]
        if missing:
            raise MissingFeatureError(f"the table lacks the model's columns {missing}")
        out = {c: pd.to_numeric(table[c], errors="coerce").astype(np.float64).to_numpy()
               for c in self.numeric}  # fmt: skip
        frame = pd.DataFrame(out, index=table.index)
        for c, values in self.categories.items():
            codes = pd.Index(values).get_indexer(pd.Index(table[c].astype("string")))
            # unseen values get code -1 (missing), never a category of their own
            dtype = pd.CategoricalDtype(list(values))
            frame[c] = pd.Categorical.from_codes(codes.astype(np.int64), dtype=dtype)
        return frame

    def array(self, table: pd.DataFrame) -> np.ndarray:
        """The matrix of ``table`` as float64 numbers, categories as their codes (NaN when
        missing or unseen): what the Boosters predict from. LightGBM gives the same
        predictions as from :meth:`transform`'s frame, without its per-call conversion of
        a DataFrame (about 20 ms a call, against 0.1 ms for one row here)."""
        missing = [c for c in self.columns if c not in table]
        if missing:
            raise MissingFeatureError(f"the table lacks the model's columns {missing}")
        out = np.empty((len(table), len(self.columns)), dtype=np.float64)
        for j, c in enumerate(self.numeric):
            out[:, j] = pd.to_numeric(table[c], errors="coerce").to_numpy(
                np.float64, na_value=np.nan
            )
        offset = len(self.numeric)
        for j, (c, values) in enumerate(self.categories.items()):
            codes = pd.Index(values).get_indexer(pd.Index(table[c].astype("string")))
            out[:, offset + j] = np.where(codes >= 0, codes, np.nan)
        return out

    def to_dict(self) -> dict[str, Any]:
        # categories as (name, values) pairs: their order is the model's column order
        return {
            "numeric": list(self.numeric),
            "categorical": [[k, list(v)] for k, v in self.categories.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureMatrix:
        return cls(tuple(data["numeric"]), {k: tuple(v) for k, v in data["categorical"]})
