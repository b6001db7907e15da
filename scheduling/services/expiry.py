"""Expiry: a message not sent by its deadline (`expires_at`: the client's expiresAt, or scheduledAt plus the
max lateness) becomes `expired` and is never sent. A tick's task expires what it locked past the deadline
instead of claiming it, the one-message path does the same, and the pump expires what no task comes for (a
paused session, a broker outage, a retry or a pacing slot beyond the deadline) as the deadline passes.
"""

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import ChannelStatus, ScheduledMessage
from ..models import MessageStatus as Status
from ..validation import format_instant
from .omnimessages import channel_report, current_channel
from .transitions import settle_locked

EXPIRED_REASON = "Expired: it could not be sent by its deadline (expiresAt)"


def is_late(message: ScheduledMessage, now: datetime) -> bool:
    return message.expires_at is not None and message.expires_at <= now


def expire_late(messages: list[ScheduledMessage], *, actor: str) -> list[ScheduledMessage]:
    """Of pending rows this transaction has locked, expire those past their deadline; the others, to send."""
    now = timezone.now()
    expire_locked([message for message in messages if is_late(message, now)], actor=actor)
    return [message for message in messages if not is_late(message, now)]


def expire_locked(messages: list[ScheduledMessage], *, actor: str) -> None:
    """pending -> expired for locked rows; an omnimessage's channel being tried is reported EXPIRED."""
    moves = [(message, f"expired: not sent by {format_instant(message.expires_at)}") for message in messages]
    settle_locked(moves, target=Status.EXPIRED, actor=actor, last_error=EXPIRED_REASON)
    for message in messages:
        attempt = current_channel(message)
        if attempt is not None:
            channel_report(message, attempt, ChannelStatus.EXPIRED, EXPIRED_REASON)


def messages_expire_overdue(now: datetime) -> int:
    """The pump's pass: expire pending messages whose deadline has passed, whether or not a task comes."""
    with transaction.atomic():
        late = list(
            ScheduledMessage.objects.select_related("session")
            .select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.PENDING, expires_at__lte=now)
            .order_by("expires_at")[: settings.DISPATCH_PUMP_BATCH]
        )
        expire_locked(late, actor="pump")
    return len(late)


def message_expire_if_late(message: ScheduledMessage, *, actor: str) -> bool:
    """The one-message path: expire this pending message if its deadline has passed; say whether it did."""
    if not is_late(message, timezone.now()):
        return False
    with transaction.atomic():
        still_pending = ScheduledMessage.objects.select_for_update().filter(
            pk=message.pk, status=Status.PENDING, version=message.version
        )
        if list(still_pending.values_list("pk", flat=True)):
            expire_locked([message], actor=actor)
    return True
