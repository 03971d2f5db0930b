"""Settings, from the environment (prefix ``GIAMSAT_``) or a ``.env`` file; never from code."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.schema import DEFAULT_TZ

ROOT = Path(__file__).resolve().parent.parent
#: Secrets that mean "nobody set this": accepted in development only.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "dev-only-pseudonym-key",
        "dev-only-api-key-pepper",
        "dev-only-webhook-secret-key",
        "dev-only-receipt-secret",
        "secret",
    }
)
DEV_PSEUDONYM_KEY = "dev-only-pseudonym-key"
DEV_API_KEY_PEPPER = "dev-only-api-key-pepper"
DEV_WEBHOOK_SECRET_KEY = "dev-only-webhook-secret-key"
DEV_RECEIPT_SECRET = "dev-only-receipt-secret"


class InsecureSettingsError(ValueError):
    """A placeholder or missing secret outside development."""


class Settings(BaseSettings):
    """Everything configurable; read once through :func:`get_settings`."""

    model_config = SettingsConfigDict(env_prefix="GIAMSAT_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    #: where the real public logs live (read from there, never copied into the repo).
    data_dir: Path = Field(default=ROOT.parent / "shared" / "data")
    #: the zone in which timestamps without an offset are read, and in which times are shown.
    timezone: str = DEFAULT_TZ
    #: keyed-hash key for applicant and submitter pseudonyms, and the id stored beside them.
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    pseudonym_key_id: str = "k1"
    #: number of dossier buckets of the Parquet event store.
    buckets: int = Field(default=16, ge=1, le=4096)
    #: country whose public holidays the working-day calendar uses.
    holiday_country: str = "VN"
    #: MLflow tracking store: a local SQLite file by default, any tracking URI (an MLflow
    #: server: http://host:5000, PostgreSQL: postgresql://...) by setting.
    mlflow_tracking_uri: str = "sqlite:///var/mlflow/mlflow.db"
    #: where runs of a new experiment keep their artifacts (a folder, s3://... on a server).
    mlflow_artifact_root: str = "var/mlflow/artifacts"
    mlflow_experiment: str = "giamsat"
    #: name of the registered model (the bundle of delay and waste models) and the aliases.
    model_name: str = "giamsat"
    #: downloaded bundles are cached here, one folder per registered version.
    model_cache: Path = Path("var/models")
    #: the alias of the registered model whose bundle the service scores with.
    model_alias: str = Field(default="champion", min_length=1)
    #: seconds between the service's checks of where that alias points (a moved alias is
    #: loaded and swapped in without a restart); 0: only at start-up and on
    #: ``POST /v1/admin/models/reload``.
    model_reload_seconds: float = Field(default=30, ge=0)
    #: the time the service scores open dossiers as of: ``wall`` (now: a live feed) or
    #: ``events`` (the latest event received: a replay of past events, the demo).
    scoring_clock: Literal["wall", "events"] = "wall"
    #: dossiers the service re-scores per transaction after ingestion.
    rescore_batch: int = Field(default=200, ge=1, le=100_000)
    #: whether the service re-scores what ingestion marks in a thread of its own (off:
    #: another process does, e.g. a second ``giamsat serve`` or ``giamsat rescore``).
    rescore_on_ingest: bool = True
    #: share of training dossiers whose waste score would raise an alert (the alert budget).
    waste_alert_share: float = Field(default=0.01, gt=0, lt=1)
    #: share of training dossiers whose integrity score would raise an alert (at least a
    #: score of 0.5); about 200 alerts a month for a province of 10,000 dossiers a month.
    integrity_alert_share: float = Field(default=0.02, gt=0, lt=1)
    #: entity integrity alerts: the false discovery rate a finding must pass, and at most
    #: how many alerts per province and pattern (the strongest first).
    entity_alert_fdr: float = Field(default=0.01, gt=0, lt=1)
    entity_alerts_per_province: int = Field(default=10, ge=1)
    #: the service store (events, scores, alerts, users, audit log): a SQLite file by
    #: default, PostgreSQL by setting postgresql://user:password@host/db (pg8000 driver).
    database_url: str = "sqlite:///var/giamsat.db"
    #: key of the HMAC under which API keys are stored; changing it invalidates every key.
    api_key_pepper: SecretStr = SecretStr(DEV_API_KEY_PEPPER)
    #: most events one ``POST /v1/events`` request may carry (larger batches get 413).
    max_batch_events: int = Field(default=500, ge=1, le=100_000)
    #: hours an open alert of each severity may wait for an acknowledgement before it
    #: escalates one level of government (commune -> province -> ministry); the clock
    #: restarts at each escalation (``giamsat alerts escalate-overdue``).
    alert_sla_high_hours: float = Field(default=24, gt=0)
    alert_sla_medium_hours: float = Field(default=72, gt=0)
    alert_sla_low_hours: float = Field(default=168, gt=0)
    #: key under which webhook signing secrets are stored encrypted (serving.webhooks);
    #: changing it makes the stored secrets unreadable (set each subscription's again).
    #: Webhooks refuse the placeholder in production (the rest of the service does not
    #: need it).
    webhook_secret_key: SecretStr = SecretStr(DEV_WEBHOOK_SECRET_KEY)
    #: the webhook dispatcher (serving.dispatcher; ``giamsat dispatch`` runs it as a
    #: worker): also run it inside ``giamsat serve`` (one thread per process).
    dispatcher_in_serve: bool = False
    #: seconds an idle dispatcher waits before looking for work again.
    dispatch_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    #: outbox messages fanned out, and deliveries claimed, per round.
    dispatch_batch: int = Field(default=100, ge=1, le=10_000)
    #: deliveries posted at once by one dispatcher.
    dispatch_concurrency: int = Field(default=8, ge=1, le=256)
    #: a receiver that has not answered within this is a failed attempt.
    dispatch_timeout_seconds: float = Field(default=10, gt=0, le=300)
    #: how long a claimed delivery is a dispatcher's: past it (the dispatcher died),
    #: another one sends it again. Must exceed the timeout.
    dispatch_lease_seconds: float = Field(default=60, gt=0)
    #: attempts before a delivery is dead-lettered (then only a manual redelivery).
    dispatch_max_attempts: int = Field(default=12, ge=1, le=100)
    #: retry n waits about backoff * 2^(n-1) seconds (at most the maximum), of which the
    #: share ``jitter`` is random, so that receivers coming back are not stampeded.
    dispatch_backoff_seconds: float = Field(default=10, gt=0)
    dispatch_backoff_max_seconds: float = Field(default=3600, gt=0)
    dispatch_jitter: float = Field(default=0.5, ge=0, le=1)
    #: ``GET /v1/alerts/stream``: how often it looks for new alert changes, and how long
    #: it stays silent before sending a heartbeat comment.
    stream_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    stream_heartbeat_seconds: float = Field(default=15, gt=0, le=3600)
    #: the stream ends after this long (the client reconnects with Last-Event-ID, missing
    #: nothing), so that a revoked key or a changed jurisdiction takes effect.
    stream_max_seconds: float = Field(default=3600, gt=0)

    #: key of the check value printed on a dossier's receipt (HMAC-SHA256 of the dossier
    #: id, serving.transparency): a citizen needs code and check value to look a dossier
    #: up. Changing it invalidates every printed check value. In production the lookup
    #: refuses the placeholder (503; the rest of the service does not need it).
    receipt_secret: SecretStr = SecretStr(DEV_RECEIPT_SECRET)
    #: characters of the check value (base32: 5 bits each; 10 = 50 bits).
    receipt_check_length: int = Field(default=10, ge=6, le=52)
    #: the public endpoints (``/v1/public``): requests per minute per client address, and
    #: how many may come at once (a token bucket); past it, 429 with Retry-After.
    public_rate_per_minute: float = Field(default=60, gt=0)
    public_rate_burst: int = Field(default=20, ge=1)
    #: take the client address from X-Forwarded-For (set it only behind a proxy that
    #: writes that header itself; otherwise anyone could pick their own address).
    public_trust_forwarded: bool = False

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment == "production":
            key = self.pseudonym_key.get_secret_value()
            if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 16:
                raise InsecureSettingsError(
                    "GIAMSAT_PSEUDONYM_KEY must be set to a real secret (16+ characters) "
                    "outside development"
                )
            pepper = self.api_key_pepper.get_secret_value()
            if pepper.strip().lower() in PLACEHOLDER_SECRETS or len(pepper) < 16:
                raise InsecureSettingsError(
                    "GIAMSAT_API_KEY_PEPPER must be set to a real secret (16+ characters) "
                    "outside development"
                )
        if self.dispatch_lease_seconds <= self.dispatch_timeout_seconds:
            raise ValueError(
                "GIAMSAT_DISPATCH_LEASE_SECONDS must exceed GIAMSAT_DISPATCH_TIMEOUT_SECONDS "
                "(a delivery in flight would be sent again by another dispatcher)"
            )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
