"""Per-dossier segment operations agree with a plain pandas groupby."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import schema as s
from features.segments import segments, variant_hashes


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-1e6, 1e6)), min_size=1, max_size=60))
def test_segment_reductions_match_groupby(rows: list[tuple[int, float]]) -> None:
    frame = pd.DataFrame(rows, columns=[s.DOSSIER_ID, "v"]).sort_values(
        s.DOSSIER_ID, kind="stable", ignore_index=True
    )
    frame[s.DOSSIER_ID] = frame[s.DOSSIER_ID].astype(str)
    seg = segments(frame)
    values = frame["v"].to_numpy()
    grouped = frame.groupby(s.DOSSIER_ID, sort=False)["v"]
    np.testing.assert_allclose(seg.sum(values), grouped.sum().to_numpy())
    np.testing.assert_allclose(seg.max(values), grouped.max().to_numpy())
    np.testing.assert_allclose(seg.min(values), grouped.min().to_numpy())
    assert seg.count(values > 0).tolist() == grouped.apply(lambda v: int((v > 0).sum())).tolist()
    assert seg.position.tolist() == grouped.cumcount().tolist()
    assert list(seg.ids) == list(grouped.sum().index)


def test_ungrouped_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="grouped"):
        segments(pd.DataFrame({s.DOSSIER_ID: ["a", "b", "a"]}))


def test_variants_tell_sequences_apart() -> None:
    frame = pd.DataFrame(
        {
            s.DOSSIER_ID: ["1", "1", "2", "2", "3", "3"],
            s.ACTIVITY: pd.Categorical(["a", "b", "b", "a", "a", "b"]),
        }
    )
    h = variant_hashes(frame)
    assert h[0] == h[2] != h[1]
