"""``giamsat db``, ``giamsat users`` and ``giamsat audit``: setting up and checking the
service store (``GIAMSAT_DATABASE_URL``); ``giamsat alerts escalate-overdue``: the SLA
job; ``giamsat labels export``: verdicts as training labels; ``giamsat serve``: the HTTP
API over it."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from features.schema import GiamSatError
from giamsat.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from serving.db import Store

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

db_app = typer.Typer(help="The service store's schema.", no_args_is_help=True)
users_app = typer.Typer(help="Users, roles, jurisdictions and API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
alerts_app = typer.Typer(help="Jobs over the alert workflow.", no_args_is_help=True)
labels_app = typer.Typer(help="Inspectors' verdicts as training labels.", no_args_is_help=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="database URL (default: GIAMSAT_DATABASE_URL)")
]


def _fail(exc: Exception | str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=code)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli"


def _instant(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time with its offset (``Z`` or ``+07:00``), for ``option``."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    if value.tzinfo is None:
        raise typer.BadParameter(f"give {text!r} a UTC offset (Z, +07:00)", param_hint=option)
    return value


def _url(url: str | None) -> str:
    return url or get_settings().database_url


@contextmanager
def _session(url: str | None, *, write: bool = False) -> Iterator[Session]:
    """A session on the migrated store at ``url`` (a transaction when ``write``): the
    store's errors become the command's error message and exit code 2."""
    store = _store(url)
    try:
        with store.transaction() if write else store.read() as session:
            yield session
    except GiamSatError as exc:
        raise _fail(exc) from exc
    finally:
        store.dispose()


def _store(url: str | None) -> Store:
    """The store at ``url``, refusing one whose schema is not the latest."""
    from serving.db import Store
    from serving.migrations import current_revision, head_revision

    target = _url(url)
    current = current_revision(target)
    if current != head_revision():
        raise _fail(
            f"the database is at schema revision {current or 'none'}, not "
            f"{head_revision()}: run `giamsat db upgrade` first"
        )
    return Store.from_url(target)


@db_app.command("upgrade")
def db_upgrade(url: UrlOption = None) -> None:
    """Create or migrate the service store's tables to the latest schema."""
    from serving.migrations import current_revision, upgrade

    target = _url(url)
    before = current_revision(target)
    upgrade(target)
    after = current_revision(target)
    out.print(f"schema at revision {after} (was {before or 'empty'})")


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Option(help="login name (letters, digits, . _ @ -)")],
    role: Annotated[
        str,
        typer.Option(help="ingest, inspector, investigator, analyst, dashboard or admin"),
    ],
    jurisdiction: Annotated[
        list[str] | None,
        typer.Option(help="jurisdiction code the user covers, repeatable (inspectors: 1+)"),
    ] = None,
    label: Annotated[str | None, typer.Option(help="note on the key (where it is used)")] = None,
    agency: Annotated[
        str | None,
        typer.Option(help="agency the user works for (no verdicts on alerts about it)"),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Create a user and their first API key; the key is printed once, never stored."""
    from serving.users import create_api_key, create_user

    pepper = get_settings().api_key_pepper.get_secret_value().encode()
    with _session(url, write=True) as session:
        user = create_user(
            session, name, role, jurisdiction or (), agency_id=agency, actor=_actor()
        )
        key_id, key = create_api_key(session, name, pepper, label=label, actor=_actor())
    places = ", ".join(sorted(user.jurisdictions)) or "all"
    works = f"; agency: {user.agency_id}" if user.agency_id else ""
    console.print(
        f"user {user.name} ({user.role.value}; jurisdictions: {places}{works}), key {key_id}"
    )
    console.print("the API key below is shown once: keep it now", style="bold")
    out.print(key, highlight=False)


@users_app.command("key")
def users_key(
    name: Annotated[str, typer.Argument(help="the user")],
    label: Annotated[str | None, typer.Option(help="note on the key")] = None,
    url: UrlOption = None,
) -> None:
    """Give an existing user a new API key (printed once)."""
    from serving.users import create_api_key

    pepper = get_settings().api_key_pepper.get_secret_value().encode()
    with _session(url, write=True) as session:
        key_id, key = create_api_key(session, name, pepper, label=label, actor=_actor())
    console.print(f"key {key_id} for {name}, shown once:", style="bold")
    out.print(key, highlight=False)


@users_app.command("revoke-key")
def users_revoke_key(
    key_id: Annotated[str, typer.Argument(help="the key id (the part after gs_)")],
    url: UrlOption = None,
) -> None:
    """Revoke an API key at once."""
    from serving.users import revoke_api_key

    with _session(url, write=True) as session:
        revoke_api_key(session, key_id, actor=_actor())
    out.print(f"key {key_id} revoked")


@users_app.command("deactivate")
def users_deactivate(
    name: Annotated[str, typer.Argument(help="the user")], url: UrlOption = None
) -> None:
    """Switch a user off; their keys stop working."""
    from serving.users import deactivate_user

    with _session(url, write=True) as session:
        deactivate_user(session, name, actor=_actor())
    out.print(f"user {name} deactivated")


@users_app.command("list")
def users_list(url: UrlOption = None) -> None:
    """Users, their roles and jurisdictions."""
    from serving.users import list_users

    with _session(url) as session:
        found = list_users(session)
    table = Table(title="users", title_justify="left")
    for column in ("name", "role", "jurisdictions", "agency", "active"):
        table.add_column(column)
    for user in found:
        table.add_row(
            user.name,
            user.role.value,
            ", ".join(sorted(user.jurisdictions)) or "all",
            user.agency_id or "",
            "yes" if user.active else "no",
        )
    out.print(table)


@audit_app.command("verify")
def audit_verify(url: UrlOption = None) -> None:
    """Check the audit chain; exit code 1 names the first edited, deleted or moved entry."""
    from serving.audit import verify

    with _session(url) as session:
        report = verify(session)
    if not report.ok:
        raise _fail(
            f"audit log broken at entry {report.broken_seq} ({report.problem}): {report.message}",
            code=1,
        )
    out.print(
        f"audit log intact: {report.entries:,} entries, head {report.head_seq} "
        f"hash {report.head_hash}"
    )


@alerts_app.command("escalate-overdue")
def alerts_escalate_overdue(
    now: Annotated[
        str | None, typer.Option(help="the time to check against, ISO 8601 (default: now)")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Escalate every open alert not acknowledged within its severity's SLA by one level
    (GIAMSAT_ALERT_SLA_*_HOURS); safe to run as often as wanted (e.g. hourly from cron)."""
    from serving.alerts import LEVELS
    from serving.sla import escalate_overdue, overdue_at_top, slas_of

    at = _instant(now, "--now") or datetime.now(UTC)
    slas = slas_of(get_settings())
    with _session(url, write=True) as session:
        done = escalate_overdue(session, now=at, slas=slas)
        stuck = overdue_at_top(session, now=at, slas=slas)
    for alert in done:
        out.print(f"{alert.alert_id} ({alert.severity}) escalated to {alert.level}")
    out.print(
        f"{len(done)} alerts escalated; {stuck} overdue at the top level "
        f"({LEVELS[-1]}) as of {at.isoformat()}"
    )


@labels_app.command("export")
def labels_export(
    out_path: Annotated[Path, typer.Option("--out", help="file to write (.csv or .parquet)")],
    since: Annotated[
        str | None, typer.Option(help="only verdicts given after this time, ISO 8601")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from the name)")
    ] = None,
    per: Annotated[
        str, typer.Option(help="alert: one row per verdict; dossier: per supporting dossier")
    ] = "alert",
    url: UrlOption = None,
) -> None:
    """Write the confirmed and dismissed alerts as training labels (label 1 = confirmed)."""
    from serving.alerts import verdicts
    from serving.labels import label_frame, write_labels

    after = _instant(since, "--since")
    with _session(url) as session:
        found = verdicts(session, since=after)
    try:
        frame = label_frame(found, per=per)  # type: ignore[arg-type]
        written = write_labels(frame, out_path, fmt)  # type: ignore[arg-type]
    except GiamSatError as exc:
        raise _fail(exc) from exc
    out.print(
        f"{len(frame):,} label rows ({len(found):,} verdicts) written to {out_path} ({written})"
    )


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    url: UrlOption = None,
) -> None:
    """Run the HTTP API (one uvicorn process; run replicas behind a load balancer)."""
    import uvicorn

    from serving.app import create_app
    from serving.middleware import log_config

    store = _store(url)  # refuses a database that is not migrated, before binding the port
    try:
        app = create_app(get_settings(), store)
        uvicorn.run(
            app, host=host, port=port, log_config=log_config(log_level), log_level=log_level
        )
    finally:
        store.dispose()


def dispatch(
    once: Annotated[
        bool, typer.Option("--once", help="run rounds until nothing is due, then exit")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Run the webhook dispatcher (serving.dispatcher): fan the outbox out to the
    subscriptions and post the deliveries, with retries, until stopped (SIGTERM or
    Ctrl-C). Run as many as wanted: they share the work through the database."""
    import signal
    import threading

    from giamsat.settings import InsecureSettingsError
    from serving.dispatcher import Dispatcher, Round

    store = _store(url)
    try:
        dispatcher = Dispatcher.from_settings(store, get_settings())
    except InsecureSettingsError as exc:
        store.dispose()
        raise _fail(exc) from exc
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"{dispatcher.worker} dispatching from {store.engine.url!r}", highlight=False)
    try:
        if once:
            done = Round()
            while True:
                step = dispatcher.run_once()
                done.add(step)
                if not step.busy:
                    break
        else:
            done = dispatcher.run(stop)
    except KeyboardInterrupt:
        done = Round()
    finally:
        signal.signal(signal.SIGTERM, previous)
        dispatcher.close()
        store.dispose()
    out.print(
        f"{done.fanned_out:,} deliveries created, {done.delivered:,} delivered, "
        f"{done.retried:,} to retry, {done.dead:,} dead-lettered"
    )


def rescore(
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="score as of this time (ISO 8601 with offset; default: "
                     "the latest stored event)"),
    ] = None,
    alias: Annotated[str, typer.Option(help="the registered model's alias")] = "champion",
    url: UrlOption = None,
) -> None:  # fmt: skip
    """Score every stored dossier with the batch pipeline and write scores and alerts into
    the store, entity alerts (officers, intermediaries, agencies) included; alerts no
    longer raised are closed. The service re-scores dossiers live as events arrive; run
    this daily (or after a promotion) for the entity alerts, which need the whole log."""
    import pandas as pd

    from features.calendar import WorkingCalendar
    from models import registry
    from models.scoring import EntityBudget
    from serving.rescoring import rescore_all

    settings = get_settings()
    stamp = _instant(as_of, "--as-of")
    try:
        found = registry.load_bundle(settings, alias)
    except GiamSatError as exc:
        raise _fail(exc) from exc
    calendar = WorkingCalendar.for_country(settings.holiday_country, tz=settings.timezone)
    ref = found.bundle.reference(calendar)
    budget = EntityBudget(settings.entity_alert_fdr, settings.entity_alerts_per_province)
    console.print(f"scoring with {settings.model_name} v{found.version} ({alias})")
    with _session(url, write=True) as session:
        done = rescore_all(
            session,
            found.bundle,
            ref,
            as_of=None if stamp is None else pd.Timestamp(stamp),
            model_version=found.version,
            budget=budget,
            tz=settings.timezone,
            say=lambda line: console.print(line, highlight=False),
        )
    out.print(done.describe())
