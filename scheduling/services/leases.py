"""A worker died mid-send: its message stays `sending` past its lease. Resend it with the same idempotency
key where the transport deduplicates; otherwise fail it as "outcome unknown", never sending twice silently."""

from datetime import datetime

from django.conf import settings
from django.db import transaction

from ..models import MessageStatus as Status
from ..models import ScheduledMessage
from ..transports import TransportError, get_transport
from .omnimessages import current_channel
from .outgoing import transport_name
from .transitions import transition


def recover_expired_leases(now: datetime) -> int:
    """A worker died mid-send. Resend only where the transport deduplicates; otherwise fail loudly."""
    expired = ScheduledMessage.objects.select_related("session").filter(status=Status.SENDING, lease_until__lt=now)
    recovered = 0
    for message in expired[: settings.DISPATCH_PUMP_BATCH]:
        with transaction.atomic():
            recovered += _recover_one(message, now)
    return recovered


def _recover_one(message: ScheduledMessage, now: datetime) -> bool:
    try:
        resendable = get_transport(transport_name(message, current_channel(message))).idempotent
    except TransportError:
        resendable = False
    if resendable and message.attempts < settings.DISPATCH_MAX_ATTEMPTS:
        return transition(
            message,
            target=Status.PENDING,
            allowed_from={Status.SENDING},
            actor="pump",
            due_at=now,
            lease_until=None,
            detail="lease expired (worker lost mid-send); resending with the same idempotency key",
        )
    reason = (
        "Outcome unknown: the worker stopped while sending and the transport cannot deduplicate, "
        "so the message was not sent again"
    )
    return transition(
        message,
        target=Status.FAILED,
        allowed_from={Status.SENDING},
        actor="pump",
        detail=reason,
        last_error=reason,
        lease_until=None,
    )
