"""Webhooks: an outbox row written in the transaction of the change it reports (so no crash loses one),
its first attempt handed over after the commit. The attempts themselves are deliveries.py's."""

from datetime import datetime
from functools import partial

from .. import handover
from ..models import MessageStatus as Status
from ..models import ScheduledMessage, WebhookDelivery
from ..validation import format_instant
from .handovers import forget_handovers

WEBHOOK_EVENTS = {
    Status.SENT: "message.sent",
    Status.FAILED: "message.failed",
    Status.CANCELLED: "message.cancelled",
    Status.EXPIRED: "message.expired",
}


WEBHOOK_STATUS_WORD = {
    Status.SENT: "success",
    Status.FAILED: "failed",
    Status.CANCELLED: "cancelled",
    Status.EXPIRED: "expired",
}


def record_webhook(message: ScheduledMessage, now: datetime) -> None:
    """The session's webhook for the status the message has just reached, if that status is reported."""
    event, session = WEBHOOK_EVENTS.get(message.status), message.session
    if event is None or not session.webhook_url or session.webhook_disabled_at:
        return
    queue_delivery(message, event, session.webhook_url, webhook_payload(message, event, now), now)


def record_webhooks(messages: list[ScheduledMessage], now: datetime) -> None:
    """`record_webhook` for a batch of messages that reached the same status: one INSERT for the outbox
    rows, and one task after the commit that makes their first attempts side by side."""
    deliveries = [
        WebhookDelivery(
            session=message.session,
            message=message,
            event=WEBHOOK_EVENTS[message.status],
            url=message.session.webhook_url,
            payload=webhook_payload(message, WEBHOOK_EVENTS[message.status], now),
            due_at=now,
            handed_over_at=now,
        )
        for message in messages
        if message.status in WEBHOOK_EVENTS and message.session.webhook_url and not message.session.webhook_disabled_at
    ]
    if not deliveries:
        return
    WebhookDelivery.objects.bulk_create(deliveries)
    handover.after_commit(
        handover.enqueue_webhooks,
        [(delivery.pk, delivery.version) for delivery in deliveries],
        undo=partial(forget_handovers, WebhookDelivery, [delivery.pk for delivery in deliveries], now),
    )


def queue_delivery(message: ScheduledMessage, event: str, url: str, payload: dict, now: datetime) -> None:
    """The outbox row, in the caller's transaction; its first attempt is handed over on commit."""
    delivery = WebhookDelivery.objects.create(
        session=message.session,
        message=message,
        event=event,
        url=url,
        payload=payload,
        due_at=now,
        handed_over_at=now,
    )
    handover.after_commit(
        handover.enqueue_webhook,
        delivery.pk,
        delivery.version,
        undo=partial(forget_handovers, WebhookDelivery, [delivery.pk], now),
    )


def webhook_payload(message: ScheduledMessage, event: str, now: datetime) -> dict:
    """`message.sent` is the seed's body exactly; the other events keep its shape."""
    payload = {
        "event": event,
        "sessionId": str(message.session_id),
        "timestamp": format_instant(now),
        "scheduledId": message.id,
        "status": WEBHOOK_STATUS_WORD[message.status],
        "result": {"messageId": message.provider_message_id, "to": whatsapp_jid(message.to)},
    }
    if message.status != Status.SENT:
        payload["result"] = {"to": whatsapp_jid(message.to)}
    if message.status in (Status.FAILED, Status.EXPIRED):
        payload["error"] = message.last_error
    return payload


def whatsapp_jid(recipient: str) -> str:
    return recipient if "@" in recipient else f"{recipient}@s.whatsapp.net"
