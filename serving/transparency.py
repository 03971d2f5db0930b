"""The public side: receipt check values, the citizen's lookup, and the rate limit.

**Check value.** A receipt carries the dossier's code and a check value::

    check(dossier_id) = base32(HMAC-SHA256(GIAMSAT_RECEIPT_SECRET,
                                           "giamsat-receipt:v1:" + dossier_id))[:length]

(upper case, no padding; ``length`` = ``GIAMSAT_RECEIPT_CHECK_LENGTH``, 10 characters =
50 bits by default). It is printed as groups of five (``ABCDE-FGHIJ``); spaces, hyphens
and case do not matter when it is typed back. Only the service, holding the secret, can
compute it, so a dossier code alone (they are sequential) reveals nothing: the lookup
compares the check value in constant time first and answers the same 404 whether the
code is unknown or the check value wrong.

**Rate limit.** A token bucket per client address (``GIAMSAT_PUBLIC_RATE_PER_MINUTE``,
``GIAMSAT_PUBLIC_RATE_BURST``); a request past it gets 429 with ``Retry-After`` (seconds
until a token is back).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from giamsat.settings import PLACEHOLDER_SECRETS, Settings
from serving.errors import NotFoundError
from serving.facts import facts_row

__all__ = [
    "RateLimiter",
    "check_value",
    "format_check",
    "lookup",
    "matches",
    "receipt_key",
]

_DOMAIN = b"giamsat-receipt:v1:"
#: clients the limiter remembers (the least recently seen are forgotten first; a
#: forgotten client starts again with a full bucket, which only ever lets through less
#: than a burst).
MAX_CLIENTS = 100_000


class ReceiptUnavailableError(RuntimeError):
    """The lookup cannot run: no real receipt secret in production."""


def receipt_key(settings: Settings) -> bytes:
    """The HMAC key (refused when it is a placeholder in production)."""
    key = settings.receipt_secret.get_secret_value()
    if settings.environment == "production" and (
        key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < 16
    ):
        raise ReceiptUnavailableError(
            "the dossier lookup is not configured: set GIAMSAT_RECEIPT_SECRET (16+ characters)"
        )
    return key.encode()


def check_value(key: bytes, dossier_id: str, length: int = 10) -> str:
    """The check value of ``dossier_id`` (see the module's text)."""
    digest = hmac.new(key, _DOMAIN + dossier_id.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().rstrip("=")[:length]


def format_check(value: str) -> str:
    """As printed on a receipt: groups of five separated by hyphens."""
    return "-".join(value[i : i + 5] for i in range(0, len(value), 5))


def _normal(typed: str) -> str:
    return "".join(typed.split()).replace("-", "").upper()


def matches(key: bytes, dossier_id: str, typed: str, length: int = 10) -> bool:
    """Whether ``typed`` is the dossier's check value (constant time in the value)."""
    expected = check_value(key, dossier_id, length).encode()
    return hmac.compare_digest(expected, _normal(typed).encode("utf-8", "replace"))


def _day(value: datetime | None, tz: str) -> str | None:
    return None if value is None else value.astimezone(ZoneInfo(tz)).date().isoformat()


def lookup(
    session: Session, settings: Settings, dossier_id: str, typed_check: str
) -> dict[str, Any]:
    """What a citizen may see of a dossier, given its code and check value; the same
    :class:`NotFoundError` for a wrong check value and for an unknown code."""
    key = receipt_key(settings)
    wrong = NotFoundError("no dossier with this code and check value")
    if not matches(key, dossier_id, typed_check, settings.receipt_check_length):
        raise wrong
    row = facts_row(session, dossier_id)
    if row is None:
        raise wrong
    tz = settings.timezone
    return {
        "dossier_id": row["dossier_id"],
        "procedure_code": row["procedure_code"],
        "agency_id": row["agency_id"],
        "stage": row["stage"],
        "outcome": row["outcome"],
        "received_on": _day(row["received_at"], tz),
        "due_on": _day(row["due_at"], tz),
        "expected_on": _day(row["expected_at"], tz) if row["closed_at"] is None else None,
        "closed_on": _day(row["closed_at"], tz),
        "as_of": row["as_of"].astimezone(ZoneInfo(tz)),
    }


class RateLimiter:
    """A token bucket per client: ``rate_per_minute`` tokens a minute, at most ``burst``
    saved up. Thread-safe (sync routes run in worker threads)."""

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str) -> float | None:
        """Spend a token of ``client``: None if it had one, else the seconds until it will."""
        now = self.clock()
        with self._lock:
            tokens, seen = self._buckets.pop(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - seen) * self.rate)
            wait = None if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[client] = (tokens - 1.0 if wait is None else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """The ``Retry-After`` header: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))
