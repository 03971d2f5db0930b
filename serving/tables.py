"""The service store's tables (SQLAlchemy Core): the one description of the schema that
the Alembic migrations reproduce (a test checks that they agree).

Every timestamp column holds UTC and comes back tz-aware (:class:`UTCDateTime`); a naive
datetime is refused rather than guessed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: constraint names are explicit, so that later migrations can drop and alter them by name.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

#: longest identifier accepted (event, dossier, agency, officer ids...); checked in Python
#: as well, so that SQLite (which does not enforce VARCHAR lengths) refuses what PostgreSQL
#: would.
ID_LENGTH = 200


class NaiveDatetimeError(ValueError):
    """A datetime without a zone was given to a timestamp column."""


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A tz-aware datetime stored as UTC; naive values are refused, results are aware (UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        to_py = getattr(value, "to_pydatetime", None)  # pandas Timestamps
        if to_py is not None:
            value = to_py()
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDatetimeError(f"timestamp {value.isoformat()} has no zone")
        utc = value.astimezone(UTC)
        # SQLite has no zone type: the stored text is UTC, read back as such below.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _id(name: str, **kw: Any) -> sa.Column[str]:
    return sa.Column(name, sa.String(ID_LENGTH), **kw)


# --- events and dossiers ------------------------------------------------------------------

events = sa.Table(
    "events",
    metadata,
    _id("event_id", primary_key=True),
    _id("dossier_id", nullable=False),
    _id("activity", nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    _id("agency_id"),
    _id("officer_id"),
    _id("procedure_code"),
    _id("jurisdiction"),
    _id("applicant_id"),
    _id("submitter_id"),
    sa.Column("channel", sa.String(20)),
    sa.Column("due_at", UTCDateTime()),
    sa.Column("recorded_at", UTCDateTime()),
    sa.Column("rating", sa.Float()),
    _id("target_agency_id"),
    sa.Column("seq", sa.BigInteger()),
    #: extra source columns, kept as they came (JSON object), or NULL.
    sa.Column("attributes", sa.JSON(none_as_null=True)),
    sa.Column("ingested_at", UTCDateTime(), nullable=False),
    sa.Index("ix_events_dossier_time", "dossier_id", "timestamp"),
)

dossiers = sa.Table(
    "dossiers",
    metadata,
    _id("dossier_id", primary_key=True),
    _id("procedure_code"),
    _id("jurisdiction", index=True),
    _id("agency_id"),
    #: latest event time seen, and when events last arrived (rescore when > scored_at).
    sa.Column("last_event_at", UTCDateTime()),
    sa.Column("events_changed_at", UTCDateTime()),
    # the current scores (the latest scoring run that covered the dossier)
    sa.Column("status", sa.String(20)),
    sa.Column("delay_risk", sa.Float()),
    sa.Column("remaining_days_p50", sa.Float()),
    sa.Column("remaining_days_p90", sa.Float()),
    sa.Column("waste_score", sa.Float()),
    sa.Column("integrity_score", sa.Float()),
    sa.Column("risk_score", sa.Float(), index=True),
    sa.Column("reasons", sa.Text()),
    sa.Column("scored_as_of", UTCDateTime()),
    sa.Column("scored_at", UTCDateTime()),
    sa.Column("model_version", sa.String(100)),
    #: the ``events_changed_at`` the current scores were computed from: the dossier waits
    #: for re-scoring while the two differ (revision 0004).
    sa.Column("scored_events_at", UTCDateTime()),
)
#: the dossiers waiting for re-scoring, and only them (a partial index: cheap to poll).
PENDING = "scored_events_at IS NULL OR events_changed_at <> scored_events_at"
sa.Index(
    "ix_dossiers_pending",
    dossiers.c.dossier_id,
    sqlite_where=sa.text(PENDING),
    postgresql_where=sa.text(PENDING),
)

# --- users and keys -----------------------------------------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    #: the agency the user works for (NULL: none, e.g. an inspectorate): such a user may
    #: not give a verdict on an alert about that agency (separation of duties).
    _id("agency_id"),
)

user_jurisdictions = sa.Table(
    "user_jurisdictions",
    metadata,
    sa.Column(
        "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    _id("jurisdiction", primary_key=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    #: the public part of a key (``gs_<key_id>_<secret>``), for lookup.
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column(
        "user_id",
        sa.Integer(),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    #: HMAC-SHA256 (keyed with the pepper) of the secret part; the key itself is never stored.
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("label", sa.String(100)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
)

# --- alerts -------------------------------------------------------------------------------

alerts = sa.Table(
    "alerts",
    metadata,
    #: models.scoring.alert_id: stable per kind (and, for entity alerts, pattern) and
    #: subject, so a re-run updates the alert instead of raising a second one.
    sa.Column("alert_id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("subject_type", sa.String(40), nullable=False),
    _id("subject_id", nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    _id("jurisdiction"),
    _id("agency_id"),
    sa.Column("reasons", sa.Text(), nullable=False, server_default=""),
    #: the pattern found (an integrity rule, or the kind itself), and the dossiers that
    #: support the alert (JSON list; the subject itself for a dossier alert).
    sa.Column("pattern", sa.String(100)),
    sa.Column("dossiers", sa.JSON(none_as_null=True)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("assignee_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL")),
    #: who confirmed or dismissed it, when, and why (the labels ``giamsat labels export`` reads).
    sa.Column("decided_by", sa.String(100)),
    sa.Column("verdict_reason", sa.Text()),
    #: optimistic concurrency: every change increments it; a stale writer gets a conflict.
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("decided_at", UTCDateTime()),
    sa.Column("closed_at", UTCDateTime()),
    sa.Index("ix_alerts_subject", "subject_type", "subject_id"),
)

#: the inbox's orders (revision 0003): each index is a set of equality columns followed by
#: the inbox's order (score DESC, alert_id), so a page is a short range scan, never a sort
#: of every match. serving.search splits a query into one scan per (status, ...) value.
ALERT_INBOX_INDEXES = {
    "ix_alerts_inbox": ("status",),
    "ix_alerts_inbox_severity": ("status", "severity"),
    "ix_alerts_inbox_kind": ("status", "kind"),
    "ix_alerts_inbox_jurisdiction": ("jurisdiction", "status"),
    "ix_alerts_inbox_agency": ("agency_id", "status"),
}
for _name, _prefix in ALERT_INBOX_INDEXES.items():
    sa.Index(_name, *(alerts.c[c] for c in _prefix), alerts.c.score.desc(), alerts.c.alert_id)
#: a time window (the inbox's since/until; the SLA's overdue open alerts): its matches are
#: counted in a range, not by reading every alert of the status.
sa.Index("ix_alerts_status_opened", alerts.c.status, alerts.c.opened_at)

alert_history = sa.Table(
    "alert_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "alert_id",
        sa.String(32),
        sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("from_status", sa.String(20)),
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("from_level", sa.String(20)),
    sa.Column("to_level", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text()),
    sa.Column("version", sa.Integer(), nullable=False),
)

# --- tamper-evident audit log -------------------------------------------------------------

audit_log = sa.Table(
    "audit_log",
    metadata,
    #: 1, 2, 3... without gaps; hashed with the entry, so a renumbering shows.
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(60), nullable=False),
    sa.Column("subject_type", sa.String(40)),
    _id("subject_id"),
    #: canonical JSON text (hashed as stored, so no dialect's JSON normalisation can break it).
    sa.Column("details", sa.Text(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

#: one row (id 1): the last sequence number and hash; appenders lock it, so the chain never
#: forks, and a deleted tail shows as head.seq > the last entry.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# --- webhooks and the transactional outbox (dispatched by issue 8's worker) --------------

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("topic", sa.String(60), nullable=False),
    _id("jurisdiction"),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("dispatched_at", UTCDateTime(), index=True),
)

webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("url", sa.String(2000), nullable=False),
    #: HMAC signing secret shared with the receiver, encrypted (serving.webhooks: Fernet
    #: under GIAMSAT_WEBHOOK_SECRET_KEY): the dispatcher decrypts it to sign.
    sa.Column("secret", sa.String(200), nullable=False),
    #: topics (e.g. ``alert.raise``), jurisdictions and alert kinds it receives; NULL = all.
    sa.Column("topics", sa.JSON()),
    sa.Column("jurisdictions", sa.JSON()),
    sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # revision 0005
    sa.Column("kinds", sa.JSON()),
    #: the lowest alert severity it receives (low < medium < high); NULL = all.
    sa.Column("min_severity", sa.String(10)),
    sa.Column("updated_at", UTCDateTime()),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "subscription_id",
        sa.Integer(),
        sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column(
        "outbox_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("outbox.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("status", sa.String(20), nullable=False),  # pending, delivered, dead
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime()),
    sa.Column("last_status_code", sa.Integer()),
    sa.Column("last_error", sa.Text()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    sa.UniqueConstraint("subscription_id", "outbox_id", name="uq_webhook_deliveries_message"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    # revision 0005: the dispatcher's claim (a worker may mark only what it claimed) and
    # the latest attempt's latency
    sa.Column("claim_token", sa.String(32)),
    sa.Column("last_latency_ms", sa.Float()),
)

#: every delivery attempt (revision 0005): the delivery log.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column(
        "delivery_id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    #: the receiver's HTTP status (NULL: no answer: refused, timed out...), and the error.
    sa.Column("status_code", sa.Integer()),
    sa.Column("error", sa.Text()),
    sa.Column("latency_ms", sa.Float(), nullable=False),
)

# --- dashboard facts (revision 0006): per dossier, what scorecards aggregate --------------

#: One row per scored dossier, written with its scores (:func:`serving.facts.refresh_facts`)
#: so that dashboards aggregate narrow rows instead of re-reading events. Flags are
#: SMALLINT 0/1 (NULL: not known), so that ``SUM`` counts them on both backends; days are
#: ``YYYYMMDD`` integers in the service's time zone (a period is a range, a month is
#: ``day / 100``).
dossier_facts = sa.Table(
    "dossier_facts",
    metadata,
    _id("dossier_id", primary_key=True),
    #: the receiving agency (first event's), the procedure, the jurisdiction, and the main
    #: officer (the approver, else the officer with most steps).
    _id("agency_id"),
    _id("procedure_code"),
    _id("jurisdiction"),
    _id("officer_id"),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("received_day", sa.Integer(), nullable=False),
    #: the first terminal event (result returned, rejected, withdrawn); NULL while open.
    sa.Column("closed_at", UTCDateTime()),
    sa.Column("closed_day", sa.Integer()),
    sa.Column("outcome", sa.String(20)),
    #: processing, awaiting_documents, paused, or closed (what a citizen's lookup shows).
    sa.Column("stage", sa.String(20), nullable=False),
    #: the statutory deadline (the log's due_at, else received + statutory working days),
    #: and, while open, the forecast end (scoring time + the median remaining working days).
    sa.Column("due_at", UTCDateTime()),
    sa.Column("expected_at", UTCDateTime()),
    sa.Column("statutory_days", sa.Float()),
    sa.Column("honest_days", sa.Float()),
    sa.Column("reported_days", sa.Float()),
    #: honest clock / statutory time.
    sa.Column("duration_ratio", sa.Float()),
    sa.Column("late_honest", sa.SmallInteger()),
    sa.Column("late_reported", sa.SmallInteger()),
    sa.Column("online", sa.SmallInteger()),
    sa.Column("paid", sa.SmallInteger(), nullable=False),
    sa.Column("paid_online", sa.SmallInteger()),
    sa.Column("digitised", sa.SmallInteger()),
    sa.Column("supplement_requests", sa.Integer(), nullable=False),
    sa.Column("transfers", sa.Integer(), nullable=False),
    sa.Column("waste_days", sa.Float()),
    sa.Column("rating", sa.Float()),
    sa.Column("as_of", UTCDateTime(), nullable=False),
    sa.Index("ix_dossier_facts_received", "received_day"),
    sa.Index("ix_dossier_facts_closed", "closed_day"),
    sa.Index("ix_dossier_facts_agency", "agency_id", "received_day"),
)

#: Every handover of a dossier between agencies (:func:`features.entity_facts.transfer_edges`),
#: replaced with the dossier's facts: the transfer graph's edges.
dossier_transfers = sa.Table(
    "dossier_transfers",
    metadata,
    _id("dossier_id", primary_key=True),
    sa.Column("n", sa.Integer(), primary_key=True, autoincrement=False),
    _id("from_agency", nullable=False),
    _id("to_agency", nullable=False),
    _id("jurisdiction"),
    _id("procedure_code"),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("day", sa.Integer(), nullable=False),
    #: working days the receiver held the dossier (NULL while it still does).
    sa.Column("holding_days", sa.Float()),
    sa.Index("ix_dossier_transfers_day", "day"),
)
