"""Alembic migrations of the service store, runnable from the installed package.

``upgrade(url)`` brings a database to the latest schema (an empty one included). The
configuration is built in code, so no ``alembic.ini`` is needed; developers who want the
``alembic`` command can point it at this folder (``script_location``) and set
``sqlalchemy.url``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from serving.db import create_engine, normalise_url

HERE = Path(__file__).resolve().parent


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for ``url`` and the migrations beside this module."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    # '%' would be read as interpolation by configparser
    rendered = normalise_url(url).render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", rendered)
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (default: the latest)."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The latest revision the package knows."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str | URL) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
