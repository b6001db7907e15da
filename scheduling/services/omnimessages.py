"""Omnimessages (Messente's API): a message with channels tried in order, each reported to the dlr_url.

The message row is an ordinary scheduled message; its channels are ChannelAttempt rows. A channel
that fails permanently or expires (ttl / validity) gives way to the next one.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ..models import ChannelAttempt, ChannelStatus, ScheduledMessage, Session
from ..models import MessageStatus as Status
from ..validation import format_instant
from .messages import message_cancel, message_schedule, refused
from .outbox import queue_delivery
from .transitions import transition

CHANNEL_ERR = {ChannelStatus.ACK: 0, ChannelStatus.FAILED: 1, ChannelStatus.EXPIRED: 2, ChannelStatus.DELETED: 0}


@dataclass(frozen=True)
class ChannelSpec:
    channel: str
    sender: str
    content: dict  # type, text, media, caption, template: what OutgoingMessage carries
    ttl_seconds: int | None = None


def omnimessage_schedule(
    *,
    session: Session,
    to: str,
    channels: list[ChannelSpec],
    scheduled_at: datetime,
    dlr_url: str = "",
    priority: str = "",
    text_store: str = "",
) -> ScheduledMessage:
    first = channels[0].content
    with transaction.atomic():
        message = message_schedule(
            session=session,
            scheduled_at=scheduled_at,
            actor="api:omnimessage",
            to=to,
            type=first["type"],
            text=first.get("text", ""),
            media=first.get("media", ""),
            caption=first.get("caption", ""),
            template=first.get("template"),
            dlr_url=dlr_url,
            priority=priority,
            text_store=text_store,
            channel_count=len(channels),
        )
        ChannelAttempt.objects.bulk_create(
            ChannelAttempt(
                message=message,
                position=position,
                channel=spec.channel,
                sender=spec.sender,
                content=spec.content,
                ttl_seconds=spec.ttl_seconds,
            )
            for position, spec in enumerate(channels)
        )
    return message


def omnimessage_cancel(*, message: ScheduledMessage) -> None:
    """Messente's cancel: only a message still waiting for its time (else NotAllowed)."""
    if message.status != Status.PENDING:
        raise refused("cancel", message)
    with transaction.atomic():
        message_cancel(message=message, actor="api:omnimessage")
        attempt = current_channel(message)
        if attempt is not None:
            channel_report(message, attempt, ChannelStatus.DELETED)


def current_channel(message: ScheduledMessage) -> ChannelAttempt | None:
    """The omnimessage channel being tried now; None for a session-API message."""
    if not message.channel_count:
        return None
    return message.channels.filter(position=message.current_channel).first()


def channel_started(attempt: ChannelAttempt) -> None:
    attempt.started_at = timezone.now()
    ChannelAttempt.objects.filter(pk=attempt.pk, started_at__isnull=True).update(started_at=attempt.started_at)


def give_up_channel(message: ScheduledMessage, attempt: ChannelAttempt, status: str, reason: str, actor: str) -> None:
    """This channel failed or expired: fall back to the next one, or fail the message after the last."""
    channel_report(message, attempt, status, reason)
    detail = f"{attempt.channel} {status.lower()}: {reason}"
    changes = {"actor": actor, "last_error": reason, "lease_until": None}
    if message.channels.filter(position=attempt.position + 1).exists():
        transition(
            message,
            target=Status.PENDING,
            allowed_from={Status.PENDING, Status.SENDING},
            detail=f"{detail}; next channel",
            current_channel=attempt.position + 1,
            attempts=0,
            due_at=timezone.now(),
            **changes,
        )
    else:
        transition(
            message, target=Status.FAILED, allowed_from={Status.PENDING, Status.SENDING}, detail=detail, **changes
        )


def channel_report(message: ScheduledMessage, attempt: ChannelAttempt, status: str, error: str = "") -> None:
    """Record a channel's status and queue its delivery report, in the caller's transaction."""
    attempt.status, attempt.error, attempt.err, attempt.status_at = status, error, CHANNEL_ERR[status], timezone.now()
    attempt.save(update_fields=["status", "error", "err", "status_at"])
    if message.dlr_url:
        queue_delivery(
            message, "omnimessage.dlr", message.dlr_url, delivery_report(message, attempt), attempt.status_at
        )


def delivery_report(message: ScheduledMessage, attempt: ChannelAttempt) -> dict:
    """Messente's delivery-report fields (also one entry of the status endpoint)."""
    return {
        "status": attempt.status or None,
        "channel": attempt.channel,
        "message_id": str(attempt.channel_message_id),
        "error": attempt.error or None,
        "err": attempt.err,
        "timestamp": format_instant(attempt.status_at or attempt.started_at),
        "sender": attempt.sender,
        "to": f"+{message.to}",
        "omnimessage_id": message.id,
    }
