"""A hand-made log of five dossiers whose dashboard figures are worked out by hand
(March 2025, no public holiday; office days Monday to Friday), loaded into a store with
scores, facts and alerts, for the dashboard and public endpoint tests.

| dossier | agency, juris. | proc. | officer | received | closed | statutory | honest | reported |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| D1 | A1, J1 | P1 | O1 | Mon 3 | Wed 5 | 4 | 2 | 2 |
| D2 | A1, J1 | P1 | O2 | Mon 3 | Tue 11 | 3 | 4 (papers Tue 4 - Thu 6) | 3 (from Thu 6) |
| D3 | A1, J1 | P2 | O1 | Mon 3 | Mon 10 | 2 | 5 | 5 |
| D4 | A2, J2 | P1 | O4 | Tue 4 | open (awaiting papers) | 3 | 1 | 1 |
| D5 | A1, J1 | P2 | O3 | Wed 5 | Mon 10 | 10 | 3 | 3 |

D2 is late on the honest clock but on time as reported; D3 is late on both. D1 paid
online, D2 at the desk; D1's log says not digitised, D3's digitised; D1 rated 5, D2 3.
D5 went A1 -> A3 (Thu 6, held 2 working days) -> A1 (Mon 10, at its end).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from features.calendar import WorkingCalendar
from features.engine import Reference
from serving.db import Store
from serving.facts import facts_of, upsert_facts
from serving.rescoring import stored_events
from serving.store import add_events, upsert_scores
from serving.workflow import upsert_alerts

VN = ZoneInfo("Asia/Ho_Chi_Minh")
AS_OF = datetime(2025, 3, 12, 17, 0, tzinfo=VN)


def at(day: int, hour: int = 8) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=VN)


def _ev(d: str, i: int, activity: str, when: datetime, agency: str = "A1",
        officer: str = "O1", **kw: Any) -> dict[str, Any]:  # fmt: skip
    row = {"event_id": f"{d}-{i}", "dossier_id": d, "activity": activity, "timestamp": when,
           "agency_id": agency, "officer_id": officer, "seq": i}  # fmt: skip
    row.update(kw)
    return row


def log() -> list[dict[str, Any]]:
    d1: dict[str, Any] = {
        "procedure_code": "P1",
        "jurisdiction": "J1",
        "channel": "online",
        "due_at": at(7),
    }
    d2: dict[str, Any] = {
        "procedure_code": "P1",
        "jurisdiction": "J1",
        "channel": "in_person",
        "due_at": at(6),
    }
    d3: dict[str, Any] = {
        "procedure_code": "P2",
        "jurisdiction": "J1",
        "channel": "online",
        "due_at": at(5),
    }
    d4: dict[str, Any] = {
        "procedure_code": "P1",
        "jurisdiction": "J2",
        "channel": "online",
        "due_at": at(7),
    }
    d5: dict[str, Any] = {
        "procedure_code": "P2",
        "jurisdiction": "J1",
        "channel": "postal",
        "due_at": at(19),
    }
    return [
        _ev("D1", 0, "received", at(3), **d1, digitised=False),
        _ev("D1", 1, "paid", at(3, 9), **d1, via="online"),
        _ev("D1", 2, "approved", at(4), **d1),
        _ev("D1", 3, "result_returned", at(5), **d1),
        _ev("D1", 4, "rated", at(5, 9), **d1, rating=5),
        _ev("D2", 0, "received", at(3), officer="O2", **d2),
        _ev("D2", 1, "supplement_requested", at(4), officer="O2", **d2),
        _ev("D2", 2, "supplement_received", at(6), officer="O2", **d2),
        _ev("D2", 3, "paid", at(6, 9), officer="O2", **d2, via="in_person"),
        _ev("D2", 4, "result_returned", at(11), officer="O2", **d2),
        _ev("D2", 5, "rated", at(11, 9), officer="O2", **d2, rating=3),
        _ev("D3", 0, "received", at(3), **d3, digitised=True),
        _ev("D3", 1, "result_returned", at(10), **d3),
        _ev("D4", 0, "received", at(4), agency="A2", officer="O4", **d4),
        _ev("D4", 1, "supplement_requested", at(5), agency="A2", officer="O4", **d4),
        _ev("D5", 0, "received", at(5), **d5),
        _ev("D5", 1, "transferred", at(6), target_agency_id="A3", **d5),
        _ev("D5", 2, "approved", at(7), agency="A3", officer="O3", **d5),
        _ev("D5", 3, "result_returned", at(10), **d5),
    ]


#: the scores written with the facts: waste days (D5 unscored for waste) and D4's
#: forecast of 2 more working days.
SCORES = pd.DataFrame(
    {
        "dossier_id": ["D1", "D2", "D3", "D4", "D5"],
        "status": ["closed", "closed", "closed", "open", "closed"],
        "first_agency": ["A1", "A1", "A1", "A2", "A1"],
        "procedure_code": ["P1", "P1", "P2", "P1", "P2"],
        "jurisdiction": ["J1", "J1", "J1", "J2", "J1"],
        "delay_risk": [None, None, None, 0.7, None],
        "remaining_days_p50": [None, None, None, 2.0, None],
        "waste_score": [0.1, 0.6, 0.3, 0.2, None],
        "waste_days": [0.0, 2.0, 1.5, 0.0, None],
        "integrity_score": [0.05, 0.2, 0.9, 0.1, 0.4],
        "risk_score": [0.1, 0.6, 0.9, 0.7, 0.4],
        "reasons": ["", "waste: two rounds", "integrity: skipped step", "late risk", ""],
    }
)


def alerts() -> list[dict[str, Any]]:
    def row(kind: str, subject_type: str, subject: str, jurisdiction: str, agency: str,
            score: float) -> dict[str, Any]:  # fmt: skip
        return {"kind": kind, "subject_type": subject_type, "subject_id": subject,
                "score": score, "severity": "high" if score >= 0.8 else "medium",
                "jurisdiction": jurisdiction, "agency_id": agency, "reasons": "test"}  # fmt: skip

    return [
        row("integrity", "dossier", "D3", "J1", "A1", 0.9),
        row("waste", "dossier", "D2", "J1", "A1", 0.6),
        row("delay", "dossier", "D4", "J2", "A2", 0.7),
        row("integrity", "officer", "O1", "J1", "A1", 0.85),
    ]


def reference() -> Reference:
    return Reference(WorkingCalendar.for_country("VN", tz="Asia/Ho_Chi_Minh"))


def load(store: Store) -> None:
    """The log, its scores, facts and alerts (opened Thu 6 March) into ``store``."""
    with store.transaction() as session:
        add_events(session, log(), now=AS_OF)
    with store.transaction() as session:
        frame = stored_events(session)
        upsert_scores(session, SCORES, as_of=AS_OF, model_version="1")
        upsert_facts(session, facts_of(frame, reference(), pd.Timestamp(AS_OF), SCORES))
        upsert_alerts(session, alerts(), now=at(6, 10))
