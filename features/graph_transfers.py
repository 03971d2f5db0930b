"""The transfer graph (agency -> agency) of the handovers of stage A: each handover marked
as a return, ping-pong or off-route, and one row per agency pair with its volume, holding
times and their anomaly, and reciprocity. Used by :mod:`features.graph`.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import networkx as nx
import numpy as np
import pandas as pd

from features import schema as s
from features.catalogue import Catalogue
from features.entity_stats import (
    IQR_TO_SIGMA,
    as_timestamp,
    complement_quantiles,
    safe_ratio,
    sorted_codes,
)

__all__ = ["TransferArrays", "transfer_arrays", "transfer_graph", "transfer_tables"]

PAIR = "agency_pair"


def _prepared_edges(
    edges: pd.DataFrame, catalogue: Catalogue | None, agencies: pd.DataFrame | None
) -> pd.DataFrame:
    """Edges in canonical order with their pair, return / ping-pong and off-route marks.

    Sorted and matched on integer codes (sorted factorisations, so the order is that of the
    names): the k-th handover of a dossier is a return when the same dossier made the
    reverse handover before it.
    """
    n = len(edges)
    dossier, _ = sorted_codes(edges[s.DOSSIER_ID])
    both, names = sorted_codes(pd.concat([edges["from_agency"], edges["to_agency"]]))
    source, target = both[:n], both[n:]
    at = pd.DatetimeIndex(edges["at"]).asi8
    order = np.lexsort((target, source, at, dossier))  # stable, as a sort of the names
    e = edges.iloc[order].reset_index(drop=True)
    dossier, source, target = dossier[order], source[order], target[order]
    e = e.assign(**{PAIR: e["from_agency"] + "->" + e["to_agency"]})
    new = np.r_[True, dossier[1:] != dossier[:-1]] if n else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    nth = np.arange(n) - starts[group] if n else group
    size = np.diff(np.r_[starts, n])[group] if n else group
    # first handover of each (dossier, from, to): a later reverse handover is a return
    pairs, pair = np.unique(source * len(names) + target, return_inverse=True)
    keys, first = np.unique(dossier * len(pairs) + pair, return_index=True)
    reverse_pair = np.searchsorted(pairs, target * len(names) + source)
    known = reverse_pair < len(pairs)
    known[known] = pairs[reverse_pair[known]] == (target * len(names) + source)[known]
    reverse = dossier * len(pairs) + np.minimum(reverse_pair, max(len(pairs) - 1, 0))
    at_key = np.minimum(np.searchsorted(keys, reverse), max(len(keys) - 1, 0))
    found = known & (keys[at_key] == reverse) if n else known
    returns = found & (nth[first[at_key]] < nth) if n else found
    return e.assign(
        _return=returns,
        _pingpong=returns & (nth < size - 1),
        _offroute=_off_route_rows(e, catalogue, agencies),
        _offroute_pair=_off_route_rows(e, catalogue, agencies, per_procedure=False),
    )


def _off_route_rows(
    e: pd.DataFrame,
    catalogue: Catalogue | None,
    agencies: pd.DataFrame | None,
    *,
    per_procedure: bool = True,
) -> np.ndarray:
    """1.0 for a handover between unit types the catalogue never approves (for the dossier's
    procedure when it is listed, else for any), 0.0 if approved, NaN if unknown."""
    if catalogue is None or agencies is None or not len(e):
        return np.full(len(e), np.nan)
    if not {s.AGENCY_ID, "unit_type"} <= set(agencies.columns):
        raise ValueError("agencies must have columns 'agency_id' and 'unit_type'")
    unit = agencies.drop_duplicates(s.AGENCY_ID).set_index(s.AGENCY_ID)["unit_type"]
    unit.index = unit.index.astype(str)
    a = e["from_agency"].astype(str).map(unit)
    b = e["to_agency"].astype(str).map(unit)
    rows = [(p.code, x, y) for p in catalogue for x, y in p.approved_transfers()]
    approved = pd.DataFrame(rows, columns=["code", "a", "b"]).drop_duplicates()
    anywhere = pd.MultiIndex.from_frame(approved[["a", "b"]].drop_duplicates())
    pair_ok = pd.MultiIndex.from_arrays([a, b]).isin(anywhere)
    listed = e[s.PROCEDURE_CODE].isin(catalogue.codes).to_numpy(dtype=bool)
    own = pd.MultiIndex.from_arrays([e[s.PROCEDURE_CODE].astype(str), a, b])
    ok = np.where(listed & per_procedure, own.isin(pd.MultiIndex.from_frame(approved)), pair_ok)
    known = (a.notna() & b.notna()).to_numpy(dtype=bool)
    return np.where(known, (~ok).astype("float64"), np.nan)


def _pair_table(e: pd.DataFrame) -> pd.DataFrame:
    """One row per agency pair: volume, holding times and their anomaly, reciprocity."""
    g = e.groupby(PAIR, sort=True)
    hold = e["holding_days"]
    table = pd.DataFrame(
        {
            "from_agency": g["from_agency"].first(),
            "to_agency": g["to_agency"].first(),
            "volume": g.size(),
            "dossiers": g[s.DOSSIER_ID].nunique(),
            "hold_p50": g["holding_days"].median(),
            "hold_p90": g["holding_days"].quantile(0.9),
            "pingpong": g["_pingpong"].sum().astype(np.int64),
            "off_route": g["_offroute_pair"].max(),
            "off_route_share": g["_offroute"].mean(),
        }
    )
    others = complement_quantiles(e["to_agency"], e["from_agency"], hold, (0.25, 0.5, 0.75))
    index = pd.MultiIndex.from_arrays([table["to_agency"], table["from_agency"]])
    others = others.reindex(index)
    other_p50 = others["q0.5"].to_numpy()
    iqr = (others["q0.75"] - others["q0.25"]).to_numpy()
    own = table["hold_p50"].to_numpy()
    table["holding_anomaly_ratio"] = safe_ratio(own, other_p50)
    table["holding_anomaly_z"] = (own - other_p50) * safe_ratio(IQR_TO_SIGMA, iqr)
    reverse = table["to_agency"] + "->" + table["from_agency"]
    table["reciprocal_volume"] = (
        table["volume"].reindex(reverse.to_numpy()).fillna(0).astype(np.int64).to_numpy()
    )
    table["off_route"] = table["off_route"].map({1.0: True, 0.0: False}).astype("boolean")
    return table


def transfer_graph(
    edges: pd.DataFrame,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
) -> nx.DiGraph:
    """The agency -> agency transfer graph of :func:`features.entity_facts.transfer_edges`.

    Edge attributes: ``volume`` (handovers), ``dossiers``, ``hold_p50`` and ``hold_p90``
    (working days the receiver held them), ``holding_anomaly_ratio``/``_z``,
    ``reciprocal_volume``, ``pingpong`` and, given the catalogue and an agencies directory
    (columns ``agency_id``, ``unit_type``), ``off_route`` (the unit types' transfer is on
    no approved route; None when unknown) and ``off_route_share``.
    """
    return _graph_of(_pair_table(_prepared_edges(edges, catalogue, agencies)))


class TransferArrays(NamedTuple):
    """The transfer graph as integer edges into its sorted agencies (for centralities)."""

    nodes: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    volume: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame) -> TransferArrays:
        """The edges of a pair table (:func:`_pair_table`), one per agency pair."""
        sources = table["from_agency"].to_numpy(dtype=object)
        targets = table["to_agency"].to_numpy(dtype=object)
        nodes = np.array(sorted(set(sources) | set(targets)), dtype=object)
        return cls(
            nodes,
            np.searchsorted(nodes, sources).astype(np.int64),
            np.searchsorted(nodes, targets).astype(np.int64),
            table["volume"].to_numpy(dtype="float64"),
        )


def _graph_of(table: pd.DataFrame) -> nx.DiGraph:
    """The transfer graph of a pair table (:func:`_pair_table`)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(set(table["from_agency"]) | set(table["to_agency"])))
    for attrs in table.to_dict("records"):
        source, target = attrs.pop("from_agency"), attrs.pop("to_agency")
        flag = attrs["off_route"]
        attrs["off_route"] = None if pd.isna(flag) else bool(flag)
        graph.add_edge(source, target, **{str(k): v for k, v in attrs.items()})
    return graph


def transfer_tables(
    edges: pd.DataFrame,
    catalogue: Catalogue | None = None,
    agencies: pd.DataFrame | None = None,
    as_of: datetime | str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The prepared handovers (:func:`_prepared_edges`) at ``as_of`` and their pair table.

    With ``as_of``, only handovers at or before it count, and holding times not over by
    then are unknown.
    """
    if as_of is not None:
        stamp = as_timestamp(as_of)
        edges = edges[(edges["at"] <= stamp).to_numpy(dtype=bool, na_value=False)]
        open_ = ~(edges["released_at"] <= stamp).to_numpy(dtype=bool, na_value=False)
        edges = edges.assign(holding_days=edges["holding_days"].where(~open_))
    e = _prepared_edges(edges, catalogue, agencies)
    return e, _pair_table(e)


def transfer_arrays(tables: tuple[pd.DataFrame, pd.DataFrame]) -> TransferArrays:
    """The transfer graph of :func:`transfer_tables` as integer edges."""
    return TransferArrays.of(tables[1])
