"""Graph features: holding anomalies, ping-pong, off-route edges, rings; deterministic and
the same from partitions as from the whole log."""

from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from features import schema as s
from features.calendar import WorkingCalendar
from features.catalogue import parse_catalogue
from features.graph import (
    graph_features,
    join_graph_features,
    merge_entity_frames,
    transfer_graph,
)
from features.registry import feature_registry
from tests.features.test_entities import (
    AS_OF,
    at,
    dossier,
    events_of,
    mixed_log,
    stage_a,
    stage_a_by_parts,
)

STEP = {"activity": "appraised", "unit_type": "dept"}
CATALOGUE = parse_catalogue(
    {
        "procedures": [
            {
                "code": "P1",
                "name_vi": "Thủ tục 1",
                "name_en": "Procedure 1",
                "level": "province",
                "statutory_days": 5,
                "online_level": "full",
                "route": [
                    {"activity": "received", "unit_type": "one_stop_desk"},
                    STEP,
                    {"activity": "approved", "unit_type": "dept"},
                    {"activity": "result_returned", "unit_type": "one_stop_desk"},
                ],
            }
        ]
    }
)
AGENCIES = pd.DataFrame(
    {"agency_id": ["A", "B", "C"], "unit_type": ["one_stop_desk", "dept", "commune_office"]}
)


def features_of(rows: list[dict], **kwargs: object) -> dict[str, pd.DataFrame]:
    facts, touches, edges = stage_a(events_of(rows))
    return graph_features(edges, facts, touches, **kwargs)  # type: ignore[arg-type]


def test_an_agency_slow_only_for_one_sender_has_a_high_holding_anomaly() -> None:
    rows: list[dict] = []
    for i in range(8):
        rows += dossier(f"s{i}", i, hold=6.0 + 0.1 * i, route=("S1", "R"))
        for k, sender in enumerate(("S2", "S3", "S4")):
            hold = 0.5 + 0.2 * ((i + k) % 4)
            rows += dossier(f"o{i}{k}", i, hold=hold, route=(sender, "R"))
    pairs = features_of(rows)["agency_pair"]
    assert pairs.loc["S1->R", "holding_anomaly_ratio"] > 5
    assert pairs.loc["S1->R", "holding_anomaly_z"] > 5
    assert pairs.loc["S2->R", "holding_anomaly_ratio"] < 1
    assert pairs.loc["S1->R", "volume"] == 8
    assert pairs.loc["S1->R", "hold_p50"] == pytest.approx(6.37, abs=1e-6)


def test_a_dossier_sent_back_and_forth_is_ping_pong() -> None:
    rows = dossier("pp", 0, route=("A", "B", "A", "C"))  # back to A, then on again
    rows += dossier("normal", 0, route=("A", "B"))
    rows += [  # a plain return to the desk at the end is the normal route
        dict(r, agency="A") if r["activity"] == "result_returned" else r
        for r in dossier("desk", 0, route=("A", "B"))
    ]
    frames = features_of(rows)
    per_dossier = frames["dossier"]
    assert per_dossier.loc["pp", "graph_pingpong"] == 1
    assert per_dossier.loc["desk", "graph_pingpong"] == 0
    assert per_dossier.loc["desk", "graph_transfers"] == 2
    agency = frames["agency"]
    assert agency.loc["A", "pingpong_dossiers"] == 1 and agency.loc["B", "pingpong_dossiers"] == 1
    assert agency.loc["C", "pingpong_dossiers"] == 0
    assert frames["agency_pair"].loc["B->A", "pingpong"] == 1
    assert frames["agency_pair"].loc["A->B", "reciprocal_volume"] == 2
    assert agency.loc["A", "reciprocity_share"] > 0


def test_three_agency_circles_and_centrality() -> None:
    rows = dossier("c1", 0, route=("A", "B", "C", "A", "D"))
    agency = features_of(rows)["agency"]
    assert agency.loc[["A", "B", "C"], "cycles3"].tolist() == [1, 1, 1]
    assert agency.loc["D", "cycles3"] == 0
    assert agency["pagerank"].sum() == pytest.approx(1.0)
    graph = nx.DiGraph([("A", "B"), ("B", "C"), ("C", "A"), ("A", "D")])
    expected = nx.betweenness_centrality(graph)
    assert agency["betweenness"].to_dict() == pytest.approx(expected)


def test_an_off_route_transfer_is_flagged_given_catalogue_and_agencies() -> None:
    rows = dossier("ok", 0, route=("A", "B"))
    rows += dossier("off", 0, route=("A", "C"))
    frames = features_of(rows, catalogue=CATALOGUE, agencies=AGENCIES)
    pairs = frames["agency_pair"]
    assert bool(pairs.loc["A->C", "off_route"]) and not bool(pairs.loc["A->B", "off_route"])
    assert frames["dossier"].loc["off", "graph_offroute_transfers"] == 1
    assert frames["dossier"].loc["ok", "graph_offroute_transfers"] == 0
    assert frames["agency"].loc["C", "offroute_share"] == 1.0
    graph = transfer_graph(stage_a(events_of(rows))[2], CATALOGUE, AGENCIES)
    assert graph.edges["A", "C"]["off_route"] is True
    assert graph.edges["A", "B"]["volume"] == 1
    # without a catalogue the flag is unknown, not false
    assert features_of(rows)["agency_pair"]["off_route"].isna().all()


def test_a_ring_of_one_officer_and_two_intermediaries_is_one_community() -> None:
    rows: list[dict] = []
    for i in range(8):
        rows += dossier(f"r{i}", i, officer="o9", submitter=["sa", "sb"][i % 2])
    for i in range(12):
        rows += dossier(f"n{i}", i, officer=f"o{i % 4}", submitter=f"x{i}")
    frames = features_of(rows)
    officer, submitter = frames["officer"], frames["submitter"]
    ring = officer.loc["o9", "community_id"]
    assert submitter.loc["sa", "community_id"] == ring == submitter.loc["sb", "community_id"]
    assert officer.loc["o9", "community_size"] == 3
    assert officer.loc["o9", "community_density"] == 1.0
    assert officer.loc["o9", "community_dossiers"] == 8
    assert officer.loc["o9", "repeat_pairs"] == 2
    assert submitter.loc["sa", "top_pair_share"] == 1.0
    assert (officer.loc[["o0", "o1"], "community_id"] != ring).all()


def test_an_intermediary_of_one_officer_is_in_that_officers_community() -> None:
    rows: list[dict] = []
    for i in range(6):  # two pairs of officers, each pair sharing intermediaries
        rows += dossier(f"a{i}", i, officer=f"o{i % 2}", submitter=f"sa{i % 3}")
        rows += dossier(f"b{i}", i, officer=f"o{2 + i % 2}", submitter=f"sb{i % 3}")
    for i in range(8):  # intermediaries who only ever saw one officer (folded leaves)
        rows += dossier(f"x{i}", i, officer=f"o{i % 4}", submitter=f"x{i}")
    frames = features_of(rows)
    officer, submitter = frames["officer"], frames["submitter"]
    for i in range(8):
        assert submitter.loc[f"x{i}", "community_id"] == officer.loc[f"o{i % 4}", "community_id"]
    assert officer.loc["o0", "community_id"] == officer.loc["o1", "community_id"]
    assert officer.loc["o0", "community_id"] != officer.loc["o2", "community_id"]
    # both communities: 2 officers, 3 shared and 4 one-officer intermediaries
    assert officer["community_size"].tolist() == [9, 9, 9, 9]
    assert officer.loc["o0", "community_dossiers"] == 6 + 4
    again = features_of(rows)
    pd.testing.assert_frame_equal(again["submitter"], submitter)


def test_graph_features_are_the_same_from_partitions_and_registered() -> None:
    events = mixed_log(5, n=90)
    whole, parts = stage_a(events), stage_a_by_parts(events)
    options = dict(catalogue=CATALOGUE, agencies=AGENCIES, as_of=AS_OF)
    one = graph_features(whole[2], whole[0], whole[1], **options)  # type: ignore[arg-type]
    many = graph_features(parts[2], parts[0], parts[1], **options)  # type: ignore[arg-type]
    registry = feature_registry()
    for entity in one:
        pd.testing.assert_frame_equal(one[entity], many[entity])
        registry.check(one[entity], entity)
    joined = join_graph_features(whole[0], one)
    registry.check(joined.drop(columns=whole[0].columns), "dossier")
    assert joined["graph_transfers"].min() >= 1
    merged = merge_entity_frames(one, {"agency": one["agency"].add_prefix("x_")})
    assert merged["agency"].shape[1] == 2 * one["agency"].shape[1]


def test_handovers_after_as_of_never_change_graph_features() -> None:
    events = mixed_log(6)
    as_of = at(40.5)
    cut = events[events[s.TIMESTAMP] <= as_of]
    facts, touches, edges = stage_a(events, as_of)
    full = graph_features(edges, facts, touches, as_of=as_of)
    facts, touches, edges = stage_a(cut)
    known = graph_features(edges, facts, touches, as_of=as_of)
    for entity in full:
        pd.testing.assert_frame_equal(full[entity], known[entity])


def test_graph_features_compute_on_the_receipt_log(
    receipt: tuple[pd.DataFrame, WorkingCalendar],
) -> None:
    events, cal = receipt
    from features.entities import dossier_facts, officer_touches, transfer_edges

    facts = dossier_facts(events, cal)
    frames = graph_features(transfer_edges(events, cal), facts, officer_touches(events, cal))
    registry = feature_registry()
    for entity, frame in frames.items():
        registry.check(frame, entity)
    assert len(frames["agency"]) == 10  # the org:group units
    assert frames["submitter"].empty and frames["officer"]["partners"].eq(0).all()
    assert frames["agency_pair"]["off_route"].isna().all()
