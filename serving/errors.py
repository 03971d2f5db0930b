"""The errors the service store raises on purpose: each names what was wrong."""

from __future__ import annotations

from features.schema import EventSchemaError, GiamSatError


class StoreError(GiamSatError):
    """Base of the service store's errors."""


class InvalidEventError(EventSchemaError, StoreError):
    """An event of a batch breaks the schema; ``index`` (0-based position in the batch),
    ``field`` and ``event_id`` say which. Nothing of the batch is stored."""

    def __init__(self, message: str, *, index: int, field: str, event_id: str | None) -> None:
        self.index = index
        self.field = field
        self.event_id = event_id
        who = f"event {index}" + (f" (event_id {event_id!r})" if event_id else "")
        EventSchemaError.__init__(self, f"{who}, field {field!r}: {message}", column=field)


class NotFoundError(StoreError, LookupError):
    """A row that should exist does not (an alert, a user, a subscription)."""


class AlertTransitionError(StoreError, ValueError):
    """A transition the state machine does not allow, or one missing what it needs."""


class AlertConflictError(StoreError):
    """Another writer changed the alert first; re-read it and retry if still wanted."""

    def __init__(self, alert_id: str, expected_version: int) -> None:
        self.alert_id = alert_id
        self.expected_version = expected_version
        super().__init__(
            f"alert {alert_id} was changed by someone else (expected version "
            f"{expected_version}); re-read it and try again"
        )


class PermissionDeniedError(StoreError, PermissionError):
    """The user's role or jurisdictions do not allow the action."""


class InvalidUserError(StoreError, ValueError):
    """A user definition that cannot be stored (role, name, jurisdictions)."""


class InvalidKeyError(StoreError):
    """An API key that is malformed, unknown, revoked or wrong (deliberately vague)."""


class InvalidSubscriptionError(StoreError, ValueError):
    """A webhook subscription that cannot be stored (url, secret)."""


class InvalidAlertError(StoreError, ValueError):
    """An alert row from the scorer that cannot be stored; names the row and field."""
