"""The HTTP API's wire models (request and response bodies), with OpenAPI examples.

They are not the storage models: :mod:`serving.store`, :mod:`serving.alerts` and
:mod:`serving.audit` return rows and dataclasses, and the ``from_*`` constructors here
choose what of them goes on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from serving.alerts import Alert
from serving.audit import ChainReport

if TYPE_CHECKING:
    pass

EVENT_EXAMPLE: dict[str, Any] = {
    "event_id": "HCM-2025-000123-0001",
    "dossier_id": "HCM-2025-000123",
    "activity": "received",
    "timestamp": "2025-03-03T08:15:00+07:00",
    "agency_id": "HCM-Q1-BPMC",
    "officer_id": "O-0042",
    "procedure_code": "1.004227",
    "jurisdiction": "79-760",
    "applicant_id": "079123456789",
    "channel": "online",
    "due_at": "2025-03-14T17:00:00+07:00",
    "seq": 1,
}


class ErrorOut(BaseModel):
    """Every error: what was wrong and, where it is one field, which."""

    detail: str
    field: str | None = None
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "detail": "event 3 (event_id 'E3'), field 'timestamp': missing value",
                    "field": "timestamp",
                    "index": 3,
                    "event_id": "E3",
                }
            ]
        },
    )


class EventIn(BaseModel):
    """A canonical event (``features/schema.py``); other keys are kept as attributes.

    ``applicant_id`` and ``submitter_id`` are pseudonymised (keyed hash) before anything
    is stored; send them raw or already pseudonymised.
    """

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [EVENT_EXAMPLE]})

    event_id: str = Field(max_length=200)
    dossier_id: str = Field(max_length=200)
    activity: str
    timestamp: datetime = Field(description="ISO 8601 with a UTC offset")
    agency_id: str | None = None
    officer_id: str | None = None
    procedure_code: str | None = None
    jurisdiction: str | None = None
    applicant_id: str | None = None
    submitter_id: str | None = None
    channel: Literal["online", "in_person", "postal"] | None = None
    due_at: datetime | None = None
    recorded_at: datetime | None = None
    rating: float | None = Field(default=None, ge=1, le=5)
    target_agency_id: str | None = None
    seq: int | None = None


class IngestOut(BaseModel):
    """What a batch did: events stored now, and events already stored (ignored)."""

    new: int
    duplicate: int
    model_config = ConfigDict(json_schema_extra={"examples": [{"new": 498, "duplicate": 2}]})


class EventOut(BaseModel):
    event_id: str
    activity: str
    timestamp: datetime
    agency_id: str | None = None
    officer_id: str | None = None
    channel: str | None = None
    recorded_at: datetime | None = None
    due_at: datetime | None = None
    rating: float | None = None
    target_agency_id: str | None = None
    seq: int | None = None
    attributes: dict[str, Any] | None = None


class DossierSummary(BaseModel):
    """A dossier and its current scores (null until the scorer has seen it)."""

    dossier_id: str
    procedure_code: str | None = None
    jurisdiction: str | None = None
    agency_id: str | None = None
    last_event_at: datetime | None = None
    status: str | None = None
    delay_risk: float | None = None
    remaining_days_p50: float | None = None
    remaining_days_p90: float | None = None
    waste_score: float | None = None
    integrity_score: float | None = None
    risk_score: float | None = None
    reasons: str | None = None
    scored_as_of: datetime | None = None
    model_version: str | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dossier_id": "HCM-2025-000123",
                    "procedure_code": "1.004227",
                    "jurisdiction": "79-760",
                    "agency_id": "HCM-Q1-BPMC",
                    "status": "open",
                    "delay_risk": 0.82,
                    "risk_score": 0.82,
                    "reasons": "appraisal 6 working days over the median; 2 transfers",
                }
            ]
        }
    )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DossierSummary:
        return cls.model_validate({k: row.get(k) for k in cls.model_fields})


class DossierPublic(DossierSummary):
    """A dossier, its current scores and reasons, and its events in time order."""

    events: list[EventOut]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset``, of ``total`` matching."""

    items: list[T]
    total: int
    limit: int
    offset: int


class AlertPublic(BaseModel):
    """An alert in the inbox."""

    alert_id: str
    kind: str
    subject_type: str
    subject_id: str
    score: float
    severity: str
    jurisdiction: str | None
    agency_id: str | None
    status: str
    level: str
    assignee: str | None
    version: int = Field(description="send it back as expected_version to act on this state")
    opened_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    verdict_reason: str | None
    closed_at: datetime | None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "alert_id": "a1b2c3d4e5f60718",
                    "kind": "delay",
                    "subject_type": "dossier",
                    "subject_id": "HCM-2025-000123",
                    "score": 0.91,
                    "severity": "high",
                    "jurisdiction": "79-760",
                    "agency_id": "HCM-Q1-BPMC",
                    "status": "open",
                    "level": "commune",
                    "assignee": None,
                    "version": 1,
                    "opened_at": "2025-03-10T02:00:00Z",
                    "updated_at": "2025-03-10T02:00:00Z",
                    "decided_at": None,
                    "decided_by": None,
                    "verdict_reason": None,
                    "closed_at": None,
                }
            ]
        }
    )

    @classmethod
    def from_alert(cls, alert: Alert) -> AlertPublic:
        fields = {k: getattr(alert, k) for k in cls.model_fields if hasattr(alert, k)}
        return cls.model_validate(fields)


class AlertPageOut(BaseModel):
    """One inbox page: ``items`` after ``cursor`` and ``offset``, highest score first."""

    items: list[AlertPublic]
    total: int = Field(
        description="alerts matching, counted up to 10,000: exact when total_exact, "
        "otherwise at least this many"
    )
    total_exact: bool = Field(description="false when the count stopped at its cap")
    limit: int
    offset: int
    next_cursor: str | None = Field(
        description="send it as cursor for the next page (null on the last page)"
    )


class HistoryOut(BaseModel):
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    from_level: str | None
    to_level: str
    reason: str | None
    version: int


class AlertEvidence(AlertPublic):
    """An alert with its evidence: the reasons, the pattern, the supporting dossiers, and
    what people and the scorer did with it."""

    reasons: str
    pattern: str | None
    dossiers: list[str]
    history: list[HistoryOut]


class AlertUpdate(BaseModel):
    """A workflow action's input. ``expected_version`` (the alert's ``version`` as read)
    makes the action fail with 409 if someone else acted first."""

    expected_version: int | None = Field(default=None, ge=1)
    reason: str | None = Field(default=None, max_length=2000, description="dismiss: required")
    assignee: str | None = Field(default=None, max_length=100, description="reassign: required")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"expected_version": 2, "reason": "the delay was a court order"}]
        },
    )


class EscalationOut(BaseModel):
    """What an SLA escalation run did: the alerts it moved up a level, and how many
    overdue alerts are already at the top level (they stay there)."""

    at: datetime
    escalated: list[AlertPublic]
    overdue_at_top: int


class ChainReportOut(BaseModel):
    """The audit chain's check: ``ok``, or the first broken entry and why."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None
    message: str = ""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"ok": True, "entries": 1204, "head_seq": 1204, "head_hash": "9f2c..."}]
        }
    )

    @classmethod
    def from_report(cls, report: ChainReport) -> ChainReportOut:
        return cls(
            ok=report.ok,
            entries=report.entries,
            head_seq=report.head_seq,
            head_hash=report.head_hash,
            broken_seq=report.broken_seq,
            problem=report.problem,
            message=report.message,
        )


class Health(BaseModel):
    status: Literal["ok", "ready", "not ready"]
    detail: str | None = None
    schema_revision: str | None = None


class ModelOut(BaseModel):
    """The model the service scores with: the registered model, its alias and the version
    loaded (null while none is), and ``problem``: why none is loaded, or why the last
    reload failed while this version is still served."""

    name: str
    alias: str
    version: str | None = None
    run_id: str | None = None
    loaded_at: datetime | None = None
    problem: str | None = None
    model_config = ConfigDict(
        from_attributes=True,  # ModelOut.model_validate(a serving.models.ModelStatus)
        json_schema_extra={
            "examples": [
                {
                    "name": "giamsat",
                    "alias": "champion",
                    "version": "3",
                    "run_id": "ead85d067a904993a85297b89b071b91",
                    "loaded_at": "2025-03-03T08:15:00+07:00",
                    "problem": None,
                }
            ]
        },
    )


class Readiness(BaseModel):
    """``ready`` when the store is at the latest schema revision and a model is loaded;
    ``detail`` says what is missing otherwise."""

    status: Literal["ready", "not ready"]
    detail: str | None = None
    schema_revision: str | None = None
    model: ModelOut


class ModelReloadOut(BaseModel):
    """``loaded``: a new version is served now; ``unchanged``: the alias still points at
    the version served."""

    outcome: Literal["loaded", "unchanged"]
    previous_version: str | None = None
    model: ModelOut


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's error statuses (all :class:`ErrorOut`)."""
    return {code: {"model": ErrorOut} for code in codes}


# --- webhook subscriptions and their deliveries (issue 8) -----------------------------------

_SUBSCRIPTION_EXAMPLE: dict[str, Any] = {
    "name": "hcm-q1-inspectorate",
    "url": "https://inspect.hcm.example/giamsat/hook",
    "jurisdictions": ["79-760"],
    "kinds": ["delay", "integrity"],
    "min_severity": "medium",
    "topics": ["alert.raise", "alert.escalate", "alert.reopen"],
    "active": True,
}


class SubscriptionIn(BaseModel):
    """A new webhook subscription. ``null`` filters take everything; ``secret`` (16-64
    printable characters) signs every delivery and is never returned."""

    name: str = Field(min_length=1, max_length=100)
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL to POST to")
    secret: str = Field(min_length=16, max_length=64, description="write-only")
    jurisdictions: list[str] | None = Field(
        default=None, max_length=1000, description="null: all (admins only)"
    )
    kinds: list[str] | None = Field(default=None, max_length=50, description="alert kinds")
    min_severity: Literal["low", "medium", "high"] | None = None
    topics: list[str] | None = Field(
        default=None, max_length=50, description="alert.raise, alert.confirm...; null: all"
    )
    active: bool = True

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_SUBSCRIPTION_EXAMPLE, "secret": "<32+ random chars>"}]},
    )


class SubscriptionUpdate(BaseModel):
    """The fields to change (absent ones are kept; ``null`` sets a filter to all)."""

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=64)
    jurisdictions: list[str] | None = Field(default=None, max_length=1000)
    kinds: list[str] | None = Field(default=None, max_length=50)
    min_severity: Literal["low", "medium", "high"] | None = None
    topics: list[str] | None = Field(default=None, max_length=50)
    active: bool | None = None

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"active": False}, {"min_severity": "high"}]},
    )


class SubscriptionOut(BaseModel):
    """A subscription (its secret is never shown)."""

    id: int
    name: str
    url: str
    jurisdictions: list[str] | None
    kinds: list[str] | None
    min_severity: str | None
    topics: list[str] | None
    active: bool
    created_at: datetime | None
    updated_at: datetime | None

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    **_SUBSCRIPTION_EXAMPLE,
                    "id": 3,
                    "created_at": "2025-03-03T01:00:00Z",
                    "updated_at": "2025-03-03T01:00:00Z",
                }
            ]
        },
    )


class AttemptOut(BaseModel):
    """One delivery attempt: the receiver's status (null: no answer) and the error."""

    at: datetime
    status_code: int | None
    error: str | None
    latency_ms: float

    model_config = ConfigDict(from_attributes=True)


class DeliveryOut(BaseModel):
    """A delivery of one outbox message to one subscription, and its attempts so far."""

    id: int
    subscription_id: int
    outbox_id: int
    topic: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int = Field(description="attempts in the current round of retries")
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    created_at: datetime
    delivered_at: datetime | None
    idempotency_key: str
    log: list[AttemptOut] = Field(default_factory=list, description="only on a single delivery")

    model_config = ConfigDict(from_attributes=True)


class DeliveryPageOut(BaseModel):
    """Deliveries, newest first; ``next_before_id`` pages on (null on the last page)."""

    items: list[DeliveryOut]
    next_before_id: int | None


# --- dashboards and the public transparency endpoints (issue 8 items 3-5) ----------------


class ServiceIndexOut(BaseModel):
    """The progress indicators of Decision 766/QĐ-TTg computable from the processing log
    (shares in [0, 1]; null when nothing was counted). Formulas: docs/inspector.md."""

    on_time_rate: float | None = Field(description="closed on time as reported / closed")
    on_time_rate_honest: float | None = Field(description="the same on the honest clock")
    online_rate: float | None = Field(description="received online / received")
    online_payment_rate: float | None = Field(description="paid online / paid (way known)")
    digitised_rate: float | None = Field(description="digitised / received (where logged)")
    satisfaction_rate: float | None = Field(description="ratings of 4 or 5 / ratings")


class ScorecardOut(BaseModel):
    """One agency's, procedure's, officer's or jurisdiction's figures over the period."""

    key: str | None
    received: int
    closed: int
    deadline_known: int = Field(description="closed dossiers with a statutory time")
    on_time_rate_reported: float | None
    on_time_rate_honest: float | None
    on_time_gap: float | None = Field(description="reported minus honest on-time rate")
    late_honest: int
    late_reported: int
    median_duration_ratio: float | None = Field(
        description="median honest clock / statutory time of the closed dossiers"
    )
    supplement_rate: float | None = Field(description="closed asked for papers / closed")
    supplement_requests: int
    waste_days: float = Field(description="waste days of the closed dossiers, summed")
    waste_scored: int
    rating_mean: float | None
    ratings: int
    alerts: dict[str, dict[str, int]] = Field(
        description="opened in the period: kind -> status -> n"
    )
    service_index: ServiceIndexOut

    @classmethod
    def of(cls, card: Any, *, alerts: bool = True) -> ScorecardOut:
        return cls(
            key=card.key,
            received=card.received,
            closed=card.closed,
            deadline_known=card.deadline_known,
            on_time_rate_reported=card.on_time_rate_reported,
            on_time_rate_honest=card.on_time_rate_honest,
            on_time_gap=card.on_time_gap,
            late_honest=card.late_honest,
            late_reported=card.late_reported,
            median_duration_ratio=card.median_duration_ratio,
            supplement_rate=card.supplement_rate,
            supplement_requests=card.supplement_requests,
            waste_days=card.waste_days,
            waste_scored=card.waste_scored,
            rating_mean=card.rating_mean,
            ratings=card.ratings,
            alerts=card.alerts if alerts else {},
            service_index=ServiceIndexOut(**card.service_index()),
        )


class ScorecardsOut(BaseModel):
    """Scorecards of a period (``since`` to ``until``, local days, both included)."""

    by: str
    since: str
    until: str
    total: int = Field(description="scorecards in the period (items is one page of them)")
    items: list[ScorecardOut]


class SeriesPointOut(BaseModel):
    start: str = Field(description="first day of the bucket (weeks start on Monday)")
    received: int
    closed: int
    on_time_rate_reported: float | None
    on_time_rate_honest: float | None
    late_honest: int
    late_reported: int
    waste_days: float
    supplement_rate: float | None
    rating_mean: float | None
    service_index: ServiceIndexOut


class SeriesOut(BaseModel):
    interval: str
    since: str
    until: str
    points: list[SeriesPointOut]


class TransferNodeOut(BaseModel):
    id: str
    sent: int
    received: int
    holding_days_mean: float | None = Field(
        description="mean working days it held what it received"
    )


class TransferEdgeOut(BaseModel):
    source: str
    target: str
    transfers: int
    still_held: int = Field(description="handovers whose receiver still holds the dossier")
    holding_days_mean: float | None
    holding_days_max: float | None
    holding_days_total: float


class TransferGraphOut(BaseModel):
    """Nodes and directed edges (a force-directed or Sankey chart draws them as they are)."""

    since: str
    until: str
    nodes: list[TransferNodeOut]
    edges: list[TransferEdgeOut]


class RiskDossierOut(BaseModel):
    """A dossier in the dashboard's risk list (no personal data)."""

    dossier_id: str
    agency_id: str | None
    procedure_code: str | None
    jurisdiction: str | None
    officer_id: str | None
    status: str | None
    received_at: datetime | None
    closed_at: datetime | None
    due_at: datetime | None
    risk_score: float | None
    delay_risk: float | None
    remaining_days_p50: float | None
    waste_score: float | None
    integrity_score: float | None
    late_honest: bool | None
    late_reported: bool | None
    duration_ratio: float | None
    waste_days: float | None
    scored_as_of: datetime | None
    reasons: str | None


class RiskPageOut(BaseModel):
    items: list[RiskDossierOut]
    total: int = Field(description="matches, counted up to 10,000")
    total_exact: bool
    limit: int
    offset: int


class PublicDossierOut(BaseModel):
    """What a citizen sees of their dossier: no names, no officers, no scores."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dossier_id": "01-250701-000002",
                    "procedure_code": "1.012790",
                    "agency_id": "01.TTPVHCC.CN01",
                    "stage": "awaiting_documents",
                    "outcome": None,
                    "received_on": "2025-07-01",
                    "due_on": "2025-07-22",
                    "expected_on": "2025-07-24",
                    "closed_on": None,
                    "as_of": "2025-07-10T17:00:00+07:00",
                }
            ]
        }
    )

    dossier_id: str
    procedure_code: str | None
    agency_id: str | None = Field(description="the agency that received it")
    stage: str = Field(description="processing, awaiting_documents, paused or closed")
    outcome: str | None = Field(description="returned, rejected or withdrawn once closed")
    received_on: str
    due_on: str | None = Field(description="the statutory deadline")
    expected_on: str | None = Field(description="while open: the forecast end")
    closed_on: str | None
    as_of: datetime = Field(description="when these figures were computed")


class PublicAgencyOut(BaseModel):
    """An agency's on-time figures over a period (aggregates only)."""

    agency_id: str | None
    received: int
    closed: int
    on_time_rate_reported: float | None
    on_time_rate_honest: float | None
    late_honest: int
    late_reported: int
    median_duration_ratio: float | None
    online_rate: float | None


class PublicAgenciesOut(BaseModel):
    since: str
    until: str
    items: list[PublicAgencyOut]


class ReceiptOut(BaseModel):
    """The check value of a dossier's receipt."""

    dossier_id: str
    check: str
    printed: str = Field(description="as printed: groups of five characters")
