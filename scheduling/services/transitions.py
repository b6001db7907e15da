"""The one guarded place where a message's status changes.

`transition` is one UPDATE matching the status and version the caller read, whose row count says
whether this caller won, plus one history row in the same transaction; a move to `pending` hands the
new version over, a move to a reported status writes its webhook to the outbox. Its batch forms, for
claiming what a tick's task sends (`claim_locked`, `claim_batch`), deferring what must wait for its
pacing slot (`defer_locked`) or for quiet hours to end (`hold_locked`) and recording what its sends
achieved (`record_sent`), make the same moves for many rows in a few statements. Every move is one of
ALLOWED_TRANSITIONS; asking for another is a bug, and raises.
"""

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..models import MessageEvent, ScheduledMessage
from ..models import MessageStatus as Status
from ..validation import format_instant
from . import outbox
from .handovers import enqueue_after_commit, enqueue_ticks_after_commit, handover_fields

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
        fields.setdefault("paced_for", None)  # a slot reserved for the old due time is not this one's
        fields.setdefault("paced_on", "")
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


def lock_due(until: datetime, *, limit: int) -> list[ScheduledMessage]:
    """What a tick's task takes, locked for this transaction: up to `limit` messages of the session API
    due by `until` (and by now), the earliest first, skipping rows another transaction holds. The
    omnimessages due go their own way (dispatch), and a paused session's wait for it to resume."""
    rows = (
        ScheduledMessage.objects.select_related("session")
        .select_for_update(skip_locked=True, of=("self",))
        .filter(status=Status.PENDING, due_at__lte=min(until, timezone.now()), channel_count=0, session__paused_at=None)
        .order_by("due_at")[:limit]
    )
    return list(rows)


def claim_locked(messages: list[ScheduledMessage], *, actor: str) -> list[ScheduledMessage]:
    """`transition(target=SENDING)` for rows this transaction has locked (`lock_due`)."""
    return _claim(messages, actor=actor, detail="claimed (batch)")


def defer_locked(deferred: list[tuple[ScheduledMessage, datetime, str, str]], *, actor: str) -> None:
    """pending -> pending, later, for locked rows that must wait for their pacing slot ((message, slot,
    the key it holds the slot on, why)): one UPDATE, one history row each, one hand-over per tick."""
    now = timezone.now()
    for message, slot, key, _ in deferred:
        message.version, message.updated_at, message.due_at = message.version + 1, now, slot
        message.paced_for, message.paced_on = slot, key
        for name, value in handover_fields(message.pk, message.version, slot, now).items():
            setattr(message, name, value)
    ScheduledMessage.objects.bulk_update([row[0] for row in deferred], DEFERRED_FIELDS)
    _record_history(
        [
            (message, f"paced ({why}): waits {(slot - now).total_seconds():.2f} s for its slot")
            for message, slot, _, why in deferred
        ],
        Status.PENDING,
        Status.PENDING,
        actor,
    )
    enqueue_ticks_after_commit([row[0] for row in deferred], now)


DEFERRED_FIELDS = ["version", "updated_at", "due_at", "paced_for", "paced_on", "handed_over_at", "task_id"]


def hold_locked(held: list[tuple[ScheduledMessage, datetime]], *, actor: str) -> None:
    """pending -> pending at the end of the quiet hours they fell due in, for locked rows ((message, end)),
    as `defer_locked` does for pacing: one UPDATE, one history row each, one hand-over per tick."""
    now = timezone.now()
    for message, until in held:
        message.version, message.updated_at, message.due_at = message.version + 1, now, until
        message.paced_for, message.paced_on = None, ""  # a slot held for now is not one for then
        for name, value in handover_fields(message.pk, message.version, until, now).items():
            setattr(message, name, value)
    ScheduledMessage.objects.bulk_update([row[0] for row in held], DEFERRED_FIELDS)
    _record_history(
        [(message, f"held for quiet hours until {format_instant(until)}") for message, until in held],
        Status.PENDING,
        Status.PENDING,
        actor,
    )
    enqueue_ticks_after_commit([row[0] for row in held], now)


def claim_batch(batch: list[tuple[str, int]], *, actor: str) -> dict[str, ScheduledMessage]:
    """`claim_due` for named messages (a batch task of an earlier version): those still pending at the
    version they were handed over for. Omnimessages and paused sessions are left to the one-message path."""
    versions = dict(batch)
    with transaction.atomic():
        # Rows by primary key only, the rest checked here: given `status='pending'` too, the planner may
        # pick the pending-rows index right after a campaign's bulk insert (stale statistics) and read
        # every pending row for each batch.
        rows = ScheduledMessage.objects.select_related("session").select_for_update(skip_locked=True, of=("self",))
        claimable = [
            message
            for message in rows.filter(pk__in=versions)
            if message.status == Status.PENDING
            and message.version == versions[message.pk]
            and not message.channel_count
            and message.session.paused_at is None
        ]
        return {message.pk: message for message in _claim(claimable, actor=actor, detail="claimed (batch)")}


def _claim(messages: list[ScheduledMessage], *, actor: str, detail: str, now=None) -> list[ScheduledMessage]:
    """pending -> sending for rows this transaction has locked: one UPDATE, one history row each."""
    if not messages:
        return []
    now = now or timezone.now()
    fields = {
        "status": Status.SENDING,
        "updated_at": now,
        "lease_until": now + settings.DISPATCH_LEASE,
        "paced_for": None,  # its slot, if it had one, is used now
        "paced_on": "",
    }
    ScheduledMessage.objects.filter(pk__in=[message.pk for message in messages]).update(
        version=F("version") + 1, attempts=F("attempts") + 1, **fields
    )
    for message in messages:
        message.version, message.attempts = message.version + 1, message.attempts + 1
        for name, value in fields.items():
            setattr(message, name, value)
    _record_history([(message, detail) for message in messages], Status.PENDING, Status.SENDING, actor)
    return messages


def _record_history(moves: list[tuple[ScheduledMessage, str]], from_status: str, to_status: str, actor: str) -> None:
    """The history rows of a batch's move, one INSERT: (message, detail) each, at its current attempt."""
    MessageEvent.objects.bulk_create(
        MessageEvent(
            message=message,
            from_status=from_status,
            to_status=to_status,
            attempt=message.attempts,
            actor=actor,
            detail=detail,
        )
        for message, detail in moves
    )


SENT_FIELDS = ["status", "version", "updated_at", "sent_at", "provider_message_id", "lease_until", "last_error"]

# One UPDATE for a batch of sent rows, each with its own provider id and time. Django's bulk_update builds a
# CASE per field and row, which cost more than all of a batch's sends together (6 ms a row, profiled).
SENT_UPDATE = """
UPDATE scheduling_scheduledmessage AS m
SET status = %s, version = m.version + 1, updated_at = %s, sent_at = v.sent_at, provider_message_id = v.pid,
    lease_until = NULL, last_error = ''
FROM (VALUES {rows}) AS v(id, pid, sent_at)
WHERE m.id = v.id AND m.status = %s
"""


def _write_sent(messages: list[ScheduledMessage], now: datetime) -> None:
    """The rows are locked and checked by the caller: write what `messages` now say, in one statement."""
    if not messages:
        return
    if connection.vendor != "postgresql":  # SQLite, the zero-configuration mode: no VALUES list with names
        ScheduledMessage.objects.bulk_update(messages, SENT_FIELDS)
        return
    rows = ", ".join(["(%s, %s, %s::timestamptz)"] * len(messages))
    values = [value for m in messages for value in (m.pk, m.provider_message_id, m.sent_at)]
    with connection.cursor() as cursor:
        cursor.execute(SENT_UPDATE.format(rows=rows), [Status.SENT, now, *values, Status.SENDING])


def record_sent(sent: list[tuple[ScheduledMessage, str, datetime]], *, actor: str) -> list[ScheduledMessage]:
    """`transition(target=SENT)` for a batch's sends that the provider accepted ((message, provider id,
    accepted at)): the rows locked and checked (still sending, at the version this worker claimed), then
    one UPDATE, the history rows and the webhooks' outbox rows in a few statements. Returns the messages
    recorded; one that is missing lost its lease before its send returned."""
    now = timezone.now()
    with transaction.atomic():
        current = dict(
            ScheduledMessage.objects.select_for_update()
            .filter(pk__in=[message.pk for message, _, _ in sent])
            .values_list("id", "version")
            .filter(status=Status.SENDING)
        )
        won = [
            (message, provider_id, at)
            for message, provider_id, at in sent
            if current.get(message.pk) == message.version
        ]
        for message, provider_id, at in won:
            message.status, message.version, message.updated_at = Status.SENT, message.version + 1, now
            message.sent_at, message.provider_message_id = at, provider_id
            message.lease_until, message.last_error = None, ""
        messages = [message for message, _, _ in won]
        _write_sent(messages, now)
        _record_history(
            [(message, f"provider id {message.provider_message_id}") for message in messages],
            Status.SENDING,
            Status.SENT,
            actor,
        )
        outbox.record_webhooks(messages, now)
    return messages
