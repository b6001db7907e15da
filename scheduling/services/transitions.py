"""The one guarded place where a message's status changes.

`transition` is one UPDATE matching the status and version the caller read, whose row count says
whether this caller won, plus one history row in the same transaction; a move to `pending` hands the
new version over, a move to a reported status writes its webhook to the outbox. Its batch forms, for
claiming what a tick's task sends (`claim_locked`, `claim_batch`), deferring what must wait for its
pacing slot or for quiet hours to end (`postpone_locked`) and recording what its sends
achieved (`record_sent`), make the same moves for many rows in a few statements. Every move is one of
ALLOWED_TRANSITIONS; asking for another is a bug, and raises.
"""

from datetime import datetime
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import MessageEvent, ScheduledMessage
from ..models import MessageStatus as Status
from . import outbox
from .handovers import enqueue_handed_over, handover_fields
from .rows import update_rows

ALLOWED_TRANSITIONS = {
    Status.PENDING: {
        Status.PENDING,  # edited, rescheduled, sent now, or handed over again
        Status.SENDING,  # claimed by a worker
        Status.CANCELLED,
        Status.FAILED,  # an omnimessage whose last channel expired before it could be tried
        Status.EXPIRED,  # not sent by its deadline (expiry.py)
    },
    Status.SENDING: {
        Status.SENT,
        Status.PENDING,  # a temporary error (retry later), the next channel, a lease recovered, a batch out of time
        Status.FAILED,  # a permanent error, retries exhausted, or the outcome unknown after a lost worker
    },
    Status.FAILED: {Status.PENDING},  # an operator's retry
    Status.SENT: set(),
    Status.CANCELLED: set(),
    Status.EXPIRED: set(),
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
        enqueue_handed_over([message])
    outbox.record_webhook(message, now)
    return True


def lock_due(until: datetime, *, limit: int) -> list[ScheduledMessage]:
    """What a tick's task takes, locked for this transaction: up to `limit` messages of the session API
    due by `until` (the tick's end: within a tick from now), the earliest first, skipping rows another
    transaction holds; each is sent at its own time. The omnimessages due go their own way (dispatch), and
    a paused session's wait for it to resume."""
    rows = (
        ScheduledMessage.objects.select_related("session")
        .select_for_update(skip_locked=True, of=("self",))
        .filter(status=Status.PENDING, due_at__lte=due_by(until), channel_count=0, session__paused_at=None)
        .order_by("due_at")[:limit]
    )
    return list(rows)


def due_by(until: datetime) -> datetime:
    """How late a message a tick's task takes may be due: by the tick's end, and within a tick of now (a
    task that runs late takes only its own tick's messages, not a later tick's)."""
    return min(until, timezone.now() + settings.DISPATCH_TICK)


def claim_locked(messages: list[ScheduledMessage], *, actor: str) -> list[ScheduledMessage]:
    """`transition(target=SENDING)` for rows this transaction has locked (`lock_due`)."""
    return _claim(messages, actor=actor, detail="claimed (batch)")


class Postponement(NamedTuple):
    """A message that must wait: for its pacing slot, or for the end of its session's quiet hours."""

    message: ScheduledMessage
    due_at: datetime  # when its task claims it (for a pacing slot, a little ahead of it, so it goes at the slot)
    detail: str  # for its history: why it waits
    slot: datetime | None = None  # the pacing slot it holds, if any
    key: str = ""  # the pacing key it holds that slot on: "session" or "transport"


def postpone_locked(postponed: list[Postponement], *, actor: str) -> list[ScheduledMessage]:
    """pending -> pending, later, for locked rows: one UPDATE, one history row each. Unlike `transition`,
    the hand-overs are the caller's, once this has committed (its sends go first); returns the messages
    to hand over."""
    now = timezone.now()
    for row in postponed:
        message, due_at = row.message, max(now, row.due_at)
        message.version, message.updated_at, message.due_at = message.version + 1, now, due_at
        message.paced_for, message.paced_on = row.slot, row.key
        for name, value in handover_fields(message.pk, message.version, due_at, now).items():
            setattr(message, name, value)
    messages = [row.message for row in postponed]
    update_rows(messages, POSTPONED_FIELDS, where_status=Status.PENDING)
    _record_history([(row.message, row.detail) for row in postponed], Status.PENDING, Status.PENDING, actor)
    return messages


POSTPONED_FIELDS = ["version", "updated_at", "due_at", "paced_for", "paced_on", "handed_over_at", "task_id"]


def claim_batch(batch: list[tuple[str, int]], *, actor: str) -> dict[str, ScheduledMessage]:
    """`claim_due` for named messages (a batch task of an earlier version): those still pending at the
    version they were handed over for. Omnimessages, paused sessions and messages past their deadline are
    left to the one-message path."""
    versions = dict(batch)
    with transaction.atomic():
        # Rows by primary key only, the rest checked here: given `status='pending'` too, the planner may
        # pick the pending-rows index right after a campaign's bulk insert (stale statistics) and read
        # every pending row for each batch.
        rows = ScheduledMessage.objects.select_related("session").select_for_update(skip_locked=True, of=("self",))
        now = timezone.now()
        claimable = [
            message
            for message in rows.filter(pk__in=versions)
            if message.status == Status.PENDING
            and message.version == versions[message.pk]
            and not message.channel_count
            and message.session.paused_at is None
            and (message.expires_at is None or message.expires_at > now)  # the one-message path expires it
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
        update_rows(messages, SENT_FIELDS, where_status=Status.SENDING)
        _record_history(
            [(message, f"provider id {message.provider_message_id}") for message in messages],
            Status.SENDING,
            Status.SENT,
            actor,
        )
        outbox.record_webhooks(messages, now)
    return messages


def settle_locked(moves: list[tuple[ScheduledMessage, str]], *, target: str, actor: str, **changes) -> None:
    """`transition` from pending to `target` (cancelled or expired) for rows this transaction has locked
    and read as pending ((message, history detail) each): one UPDATE, the history rows, the webhooks."""
    if target not in ALLOWED_TRANSITIONS[Status.PENDING]:
        raise ValueError(f"no transition pending -> {target}: see ALLOWED_TRANSITIONS")
    if not moves:
        return
    now = timezone.now()
    fields = {"status": target, "updated_at": now, **changes}
    messages = [message for message, _ in moves]
    ScheduledMessage.objects.filter(pk__in=[message.pk for message in messages], status=Status.PENDING).update(
        version=F("version") + 1, **fields
    )
    for message in messages:
        message.version += 1
        for name, value in fields.items():
            setattr(message, name, value)
    _record_history(moves, Status.PENDING, target, actor)
    outbox.record_webhooks(messages, now)
