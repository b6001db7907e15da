"""The one guarded place where a message's status changes.

`transition` is one UPDATE matching the status and version the caller read, whose row count says
whether this caller won, plus one history row in the same transaction; a move to `pending` hands the
new version over, a move to a reported status writes its webhook to the outbox. `claim_batch` is its
form for claiming, in one UPDATE, several messages handed over together. Every move is one of
ALLOWED_TRANSITIONS; asking for another is a bug, and raises.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import MessageEvent, ScheduledMessage
from ..models import MessageStatus as Status
from . import outbox
from .handovers import enqueue_after_commit, handover_fields

ALLOWED_TRANSITIONS = {
    Status.PENDING: {
        Status.PENDING,  # edited, rescheduled, sent now, or handed over again
        Status.SENDING,  # claimed by a worker
        Status.CANCELLED,
        Status.FAILED,  # an omnimessage whose last channel expired before it could be tried
    },
    Status.SENDING: {
        Status.SENT,
        Status.PENDING,  # a temporary error (retry later), the next channel, a lease recovered, a batch out of time
        Status.FAILED,  # a permanent error, retries exhausted, or the outcome unknown after a lost worker
    },
    Status.FAILED: {Status.PENDING},  # an operator's retry
    Status.SENT: set(),
    Status.CANCELLED: set(),
}


def transition(
    message: ScheduledMessage, *, target: str, allowed_from: set, actor: str, detail: str = "", **changes
) -> bool:
    """Move `message` to `target` if it is still in the status and version we read; say whether we won.

    Must run inside a transaction, so that the history row (and any hand-over) commits with it.
    """
    if message.status not in allowed_from:
        return False
    if target not in ALLOWED_TRANSITIONS[message.status]:
        raise ValueError(f"no transition {message.status} -> {target}: see ALLOWED_TRANSITIONS")
    now = timezone.now()
    fields = {"status": target, "version": message.version + 1, "updated_at": now, **changes}
    if target == Status.PENDING:
        due_at = fields.get("due_at", message.due_at)
        fields.update(handover_fields(message.pk, fields["version"], due_at, now))
    won = ScheduledMessage.objects.filter(pk=message.pk, status=message.status, version=message.version).update(
        **fields
    )
    if not won:
        return False
    from_status = message.status
    for name, value in fields.items():
        setattr(message, name, value)
    MessageEvent.objects.create(
        message=message, from_status=from_status, to_status=target, attempt=message.attempts, actor=actor, detail=detail
    )
    if target == Status.PENDING:
        enqueue_after_commit(message)
    outbox.record_webhook(message, now)
    return True


def claim_batch(batch: list[tuple[str, int]], *, actor: str) -> dict[str, ScheduledMessage]:
    """`transition(target=SENDING)` for a batch: lock the rows still pending at the version they were
    handed over for (skipping rows another transaction holds), move them all in one UPDATE, and write
    one history row each. Omnimessages and paused sessions are left to the one-message path."""
    versions = dict(batch)
    now = timezone.now()
    with transaction.atomic():
        # Rows by primary key only, the rest checked here: given `status='pending'` too, the planner may
        # pick the pending-rows index right after a campaign's bulk insert (stale statistics) and read
        # every pending row for each batch.
        rows = ScheduledMessage.objects.select_related("session").select_for_update(skip_locked=True, of=("self",))
        claimed = {
            message.pk: message
            for message in rows.filter(pk__in=versions)
            if message.status == Status.PENDING
            and message.version == versions[message.pk]
            and not message.channel_count
            and message.session.paused_at is None
        }
        if not claimed:
            return {}
        fields = {"status": Status.SENDING, "updated_at": now, "lease_until": now + settings.DISPATCH_LEASE}
        ScheduledMessage.objects.filter(pk__in=claimed).update(
            version=F("version") + 1, attempts=F("attempts") + 1, **fields
        )
        for message in claimed.values():
            message.version, message.attempts = message.version + 1, message.attempts + 1
            for name, value in fields.items():
                setattr(message, name, value)
        MessageEvent.objects.bulk_create(
            MessageEvent(
                message=message,
                from_status=Status.PENDING,
                to_status=Status.SENDING,
                attempt=message.attempts,
                actor=actor,
                detail="claimed (batch)",
            )
            for message in claimed.values()
        )
    return claimed
