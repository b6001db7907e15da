"""Webhook deliveries: one attempt (claim, POST signed, log the attempt), then delivered, gone (410),
exhausted, or the next attempt later. Every change of a delivery goes through `_delivery_transition`,
guarded by its version; retries longer than the dispatch horizon wait in the database for the pump."""

import logging
import random
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import handover, inflight, metrics, webhooks
from ..models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from .handovers import forget_handovers
from .sessions import session_stop_webhooks

logger = logging.getLogger("scheduling.services")


def webhook_deliver(*, delivery_id: str, version: int) -> None:
    """One attempt: claim, POST signed, log the attempt, then delivered / retry later / give up."""
    webhooks_deliver(batch=[(delivery_id, version)])


def webhooks_deliver(*, batch: list[tuple[str, int]]) -> None:
    """One attempt of each delivery still pending at its version: claimed one by one, POSTed side by
    side (a batch of sends writes its webhooks together), each outcome recorded."""
    claimed = [delivery for delivery_id, version in batch if (delivery := _claim(delivery_id, version))]
    if not claimed:
        return
    started_at = timezone.now()
    outcomes = inflight.call_side_by_side([partial(_post, delivery) for delivery in claimed])
    for delivery, outcome in zip(claimed, outcomes, strict=True):
        if outcome.error is not None:  # a bug: webhooks.post answers every failure of the receiver itself
            logger.error("webhook attempt raised %r", outcome.error, exc_info=outcome.error)
        attempt = outcome.value or webhooks.AttemptOutcome(None, f"unexpected error: {outcome.error!r}", 0)
        _record_attempt(delivery, attempt, started_at)


def _claim(delivery_id: str, version: int) -> WebhookDelivery | None:
    delivery = WebhookDelivery.objects.select_related("session").filter(pk=delivery_id).first()
    if delivery is None or delivery.version != version or delivery.status != DeliveryStatus.PENDING:
        return None
    now = timezone.now()
    # The claim parks the row a lease ahead: if this worker dies, the pump re-hands it then.
    won = _delivery_transition(
        delivery, attempts=delivery.attempts + 1, due_at=now + settings.DISPATCH_LEASE, handed_over_at=now
    )
    return delivery if won else None


def _post(delivery: WebhookDelivery) -> webhooks.AttemptOutcome:
    """The HTTP part alone (no database): safe on the side-by-side threads. It never raises."""
    return webhooks.post(
        webhook_id=delivery.id,
        url=delivery.url,
        secret=delivery.session.webhook_secret,
        payload=delivery.payload,
        timeout=settings.WEBHOOK_TIMEOUT,
        allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
    )


def _record_attempt(delivery: WebhookDelivery, outcome: webhooks.AttemptOutcome, started_at: datetime) -> None:
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=started_at,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=outcome.error,
            response_excerpt=outcome.response_excerpt,
        )
        result = _record_attempt_outcome(delivery, outcome)
    metrics.count_webhook_attempt(outcome=result)
    logger.info(
        "webhook attempt %s: %s",
        result,
        outcome.error or outcome.status_code,
        extra={
            "delivery_id": delivery.id,
            "message_id": delivery.message_id,
            "session_id": str(delivery.session_id),
            "event": delivery.event,
            "status_code": outcome.status_code,
            "duration_ms": outcome.duration_ms,
        },
    )


def _record_attempt_outcome(delivery: WebhookDelivery, outcome: webhooks.AttemptOutcome) -> str:
    """Delivered, gone (410), exhausted, or a retry later; returns which, for metrics and logs."""
    now = timezone.now()
    result = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        _delivery_transition(delivery, status=DeliveryStatus.DELIVERED, delivered_at=now, **result)
        return "delivered"
    if outcome.gone:
        _delivery_transition(delivery, status=DeliveryStatus.GONE, **result)
        session_stop_webhooks(session_id=delivery.session_id, at=now)
        return "gone"
    if delivery.attempts > len(settings.WEBHOOK_RETRY_SCHEDULE):
        _delivery_transition(delivery, status=DeliveryStatus.EXHAUSTED, **result)
        return "exhausted"
    due_at = now + timedelta(seconds=webhook_retry_delay(delivery.attempts, outcome.retry_after))
    _delivery_reschedule(delivery, due_at, now, **result)
    return "retry"


def webhook_retry_delay(attempts: int, retry_after: float | None = None) -> float:
    planned = settings.WEBHOOK_RETRY_SCHEDULE[attempts - 1]
    return max(planned * random.uniform(0.9, 1.1), retry_after or 0.0)


def webhook_redeliver(*, delivery: WebhookDelivery) -> None:
    """Operator's "redeliver": the same event (same webhook-id) again, with a fresh retry budget."""
    now = timezone.now()
    with transaction.atomic():
        _delivery_reschedule(delivery, now, now, status=DeliveryStatus.PENDING, attempts=0)


def _delivery_reschedule(delivery: WebhookDelivery, due_at: datetime, now: datetime, **fields) -> None:
    """Next attempt at `due_at`: short waits go to Celery with an ETA once the write has won and
    committed; long ones wait in the database for the pump."""
    within_horizon = due_at <= now + settings.DISPATCH_HORIZON
    if (
        _delivery_transition(delivery, due_at=due_at, handed_over_at=now if within_horizon else None, **fields)
        and within_horizon
    ):
        handover.after_commit(
            handover.enqueue_webhook,
            delivery.pk,
            delivery.version,
            due_at,
            undo=partial(forget_handovers, WebhookDelivery, [delivery.pk], now),
        )


def _delivery_transition(delivery: WebhookDelivery, **fields) -> bool:
    """The one guarded write of a delivery: it applies only to the version we read."""
    fields["version"] = delivery.version + 1
    won = WebhookDelivery.objects.filter(pk=delivery.pk, version=delivery.version).update(**fields)
    if won:
        for name, value in fields.items():
            setattr(delivery, name, value)
    return bool(won)
