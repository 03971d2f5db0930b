"""``/v1/subscriptions``: webhook subscriptions of inspection agencies, their deliveries,
and manual redelivery. Admins manage all of them; inspectors and investigators those
whose jurisdictions are all theirs (:mod:`serving.webhooks`). Every change is audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from giamsat.settings import InsecureSettingsError
from serving.deps import MAX_OFFSET, SessionDep, SettingsDep, TransactionDep, require
from serving.handlers import ApiError
from serving.schemas import (
    DeliveryOut,
    DeliveryPageOut,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionUpdate,
    error_responses,
)
from serving.users import Role, User
from serving.webhooks import (
    create_subscription,
    delete_subscription,
    get_delivery,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    redeliver,
    secret_key,
    update_subscription,
)

router = APIRouter(prefix="/v1/subscriptions", tags=["webhooks"])

#: manages webhook subscriptions (inspectors and investigators: their jurisdictions').
Manager = Annotated[User, Depends(require(Role.ADMIN, Role.INSPECTOR, Role.INVESTIGATOR))]


def _key(settings: SettingsDep) -> bytes:
    try:
        return secret_key(settings)
    except InsecureSettingsError as exc:
        raise ApiError(503, str(exc)) from None


KeyDep = Annotated[bytes, Depends(_key)]


def _id(value: int, name: str) -> int:
    if not 1 <= value <= MAX_OFFSET:
        raise ApiError(404, f"no {name} {value}")
    return value


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionOut,
    responses=error_responses(400, 401, 403, 422, 503),
)
def create(
    user: Manager, session: TransactionDep, key: KeyDep, body: SubscriptionIn
) -> SubscriptionOut:
    """Subscribe a URL to alert changes. ``null`` filters take everything (a
    subscription to every jurisdiction is an admin's); the secret is stored encrypted
    and never shown again."""
    sub = create_subscription(
        session,
        body.name,
        body.url,
        body.secret,
        key=key,
        topics=body.topics,
        jurisdictions=body.jurisdictions,
        kinds=body.kinds,
        min_severity=body.min_severity,
        active=body.active,
        user=user,
    )
    return SubscriptionOut.model_validate(sub)


@router.get("", response_model=list[SubscriptionOut], responses=error_responses(401, 403))
def list_all(user: Manager, session: SessionDep) -> list[SubscriptionOut]:
    """The subscriptions the caller manages, by name."""
    return [SubscriptionOut.model_validate(s) for s in list_subscriptions(session, user)]


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    responses=error_responses(401, 403, 404, 422),
)
def read(user: Manager, session: SessionDep, subscription_id: int) -> SubscriptionOut:
    """One subscription; 404 when it is not the caller's to manage."""
    found = get_subscription(session, user, _id(subscription_id, "webhook subscription"))
    return SubscriptionOut.model_validate(found)


@router.patch(
    "/{subscription_id}",
    response_model=SubscriptionOut,
    responses=error_responses(400, 401, 403, 404, 422, 503),
)
def update(
    user: Manager,
    session: TransactionDep,
    key: KeyDep,
    subscription_id: int,
    body: SubscriptionUpdate,
) -> SubscriptionOut:
    """Change the fields sent (``active: false`` pauses deliveries: they wait, and go
    out when it is active again); a new ``secret`` takes effect at the next attempt."""
    changes = body.model_dump(exclude_unset=True)
    if "url" in changes and changes["url"] is None:
        raise ApiError(422, "url: cannot be null", field="url")
    if "secret" in changes and changes["secret"] is None:
        raise ApiError(422, "secret: cannot be null", field="secret")
    if "active" in changes and changes["active"] is None:
        raise ApiError(422, "active: cannot be null", field="active")
    found = update_subscription(
        session, user, _id(subscription_id, "webhook subscription"), changes, key=key
    )
    return SubscriptionOut.model_validate(found)


@router.delete("/{subscription_id}", status_code=204, responses=error_responses(401, 403, 404, 422))
def delete(user: Manager, session: TransactionDep, subscription_id: int) -> Response:
    """Delete a subscription and its delivery log (audited)."""
    delete_subscription(session, user, _id(subscription_id, "webhook subscription"))
    return Response(status_code=204)


@router.get(
    "/{subscription_id}/deliveries",
    response_model=DeliveryPageOut,
    responses=error_responses(401, 403, 404, 422),
)
def deliveries(
    user: Manager,
    session: SessionDep,
    subscription_id: int,
    status: Annotated[str | None, Query(description="pending, delivered or dead")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryPageOut:
    """The subscription's deliveries, newest first: status, attempts, the last status
    code, error and latency. ``status=dead`` lists what needs a manual redelivery."""
    found = list_deliveries(
        session,
        user,
        _id(subscription_id, "webhook subscription"),
        status=status,
        before_id=before_id,
        limit=limit,
    )
    more = len(found) == limit
    return DeliveryPageOut(
        items=[DeliveryOut.model_validate(d) for d in found],
        next_before_id=found[-1].id if found and more else None,
    )


@router.get(
    "/{subscription_id}/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 422),
)
def delivery(
    user: Manager, session: SessionDep, subscription_id: int, delivery_id: int
) -> DeliveryOut:
    """One delivery and its attempt log (each attempt's time, status code, error and
    latency)."""
    found = get_delivery(
        session,
        user,
        _id(subscription_id, "webhook subscription"),
        _id(delivery_id, "delivery"),
    )
    return DeliveryOut.model_validate(found)


@router.post(
    "/{subscription_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def redeliver_one(
    user: Manager, session: TransactionDep, subscription_id: int, delivery_id: int
) -> DeliveryOut:
    """Send a dead (or delivered) delivery again, with a fresh round of retries and the
    same ``Idempotency-Key`` (audited); 409 for one still pending."""
    found = redeliver(
        session,
        user,
        _id(subscription_id, "webhook subscription"),
        _id(delivery_id, "delivery"),
    )
    return DeliveryOut.model_validate(found)
