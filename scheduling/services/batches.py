"""Batches of the session API: the messages of one bulk request, stored together in one transaction,
listed and cancelled together; each keeps its own id, status and webhooks."""

from django.db import transaction
from django.utils import timezone

from ..models import MessageEvent, ScheduledMessage, Session, new_batch_id
from ..models import MessageStatus as Status
from .handovers import enqueue_handed_over
from .messages import new_message, scheduled_detail
from .transitions import settle_locked


def messages_schedule_batch(
    *, session: Session, contents: list[dict], actor: str = "api"
) -> tuple[str, list[ScheduledMessage]]:
    """Schedule each of `contents` (message_schedule's arguments: scheduled_at and the content) as one
    batch, in a few statements: its id and the messages, in order."""
    now, batch_id = timezone.now(), new_batch_id()
    messages = [new_message(session, batch_id=batch_id, now=now, **content) for content in contents]
    with transaction.atomic():
        ScheduledMessage.objects.bulk_create(messages)
        MessageEvent.objects.bulk_create(
            MessageEvent(
                message=message,
                to_status=Status.PENDING,
                actor=actor,
                detail=scheduled_detail(message, f"scheduled in {batch_id}"),
            )
            for message in messages
        )
        enqueue_handed_over(messages)
    return batch_id, messages


def batch_cancel(*, session: Session, batch_id: str, actor: str = "api") -> tuple[int, int] | None:
    """Cancel every message of the batch that is still pending: (cancelled, not cancelled), or None for a
    batch the session does not have. A message being claimed right now is waited for, then not cancelled."""
    with transaction.atomic():
        batch = ScheduledMessage.objects.filter(session=session, batch_id=batch_id)
        size = batch.count()
        if not size:
            return None
        pending = list(
            batch.select_related("session")
            .select_for_update(of=("self",))
            .filter(status=Status.PENDING)
            .order_by("due_at", "id")  # the order a tick's task locks in: no deadlock with one
        )
        settle_locked(
            [(message, f"cancelled with {batch_id}") for message in pending], target=Status.CANCELLED, actor=actor
        )
    return len(pending), size - len(pending)
