"""The pump: makes the occurrences of recurring series (occurrences.py), hands over what enters the
dispatch horizon, hands everything over again when the broker may have lost it, re-hands a hand-over lost
unnoticed (the stale-after rule), and recovers messages whose worker died mid-send. Safe in several
replicas: rows are taken with FOR UPDATE SKIP LOCKED.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Value
from django.utils import timezone

from .. import broker, handover, selectors
from ..models import DeliveryStatus, MessageEvent, PumpHeartbeat, ScheduledMessage, WebhookDelivery
from ..models import MessageStatus as Status
from .expiry import messages_expire_overdue
from .handovers import enqueue_deliveries, enqueue_sends, forget_handovers
from .idempotency import idempotency_keys_purge
from .leases import recover_expired_leases
from .occurrences import occurrences_materialise

logger = logging.getLogger("scheduling.services")


@dataclass(frozen=True)
class PumpPass:
    moved: int  # messages and webhook deliveries handed over or recovered
    broker_reachable: bool


def dispatch_pump_once() -> PumpPass:
    """Expire what is past its deadline, hand over what has entered the horizon, re-hand lost hand-overs,
    recover expired leases (and forget idempotency keys past their time). While the broker cannot be
    reached, only the database work (deadlines, leases) is seen to.

    Safe in several replicas: rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL.
    """
    now = selectors.db_now()
    occurrences_materialise(now)  # database work only: the hand-over below takes those due within the horizon
    idempotency_keys_purge(now)
    expired = messages_expire_overdue(now)
    lost_work = broker.lost_work()
    if lost_work is None:
        return PumpPass(moved=expired + recover_expired_leases(now), broker_reachable=False)
    if lost_work:
        _hand_over_everything_again(now)
        broker.keeps_work()
    return PumpPass(moved=expired + _hand_over_all_due(now) + recover_expired_leases(now), broker_reachable=True)


def _hand_over_all_due(now: datetime) -> int:
    backlog = broker.backlog()
    messages = _hand_over_due(
        ScheduledMessage.objects.filter(status=Status.PENDING, session__paused_at__isnull=True),
        enqueue_sends,
        now,
        backlog=backlog,
        front=selectors.dispatch_front(now),
        task_id=Value("due-by-pump"),
    )
    deliveries = _hand_over_due(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING), enqueue_deliveries, now, backlog=backlog
    )
    return messages + deliveries


def _hand_over_everything_again(now: datetime) -> None:
    """The broker may have lost every task it held (a new, flushed or failed-over Redis, or a worker
    that reconnected and dropped its ETA tasks): mark every outstanding hand-over as not made, so this
    very pass makes them again. A task that was not lost after all finds its message claimed: a no-op."""
    with transaction.atomic():
        messages = ScheduledMessage.objects.select_for_update(skip_locked=True).filter(
            status=Status.PENDING, handed_over_at__lt=now
        )
        message_rows = list(messages.values_list("id", "version"))
        ScheduledMessage.objects.filter(pk__in=[row[0] for row in message_rows]).update(handed_over_at=None)
        MessageEvent.objects.bulk_create(
            MessageEvent(
                message_id=message_id,
                from_status=Status.PENDING,
                to_status=Status.PENDING,
                actor="pump",
                detail=f"the broker may have lost the hand-over of version {version} (new or flushed"
                " broker, or a worker reconnected); handing over again",
            )
            for message_id, version in message_rows
        )
        deliveries = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, handed_over_at__lt=now)
        delivery_count = deliveries.update(handed_over_at=None)
    if message_rows or delivery_count:
        logger.warning(
            "the broker may have lost its tasks: handing over %d message(s) and %d webhook delivery(ies) again",
            len(message_rows),
            delivery_count,
        )


def _hand_over_due(
    pending, enqueue, now: datetime, *, backlog: int | None, front: datetime | None = None, **bookkeeping
) -> int:
    """Enqueue pending rows due within the horizon that were never handed over, or whose hand-over
    is still pending well past its time (lost with a flushed broker or a killed worker).

    A late task is most likely still waiting, not lost, while the broker has a backlog, or while
    the fleet is still sending messages due before it (`front`: a campaign draining late, its tasks
    held by the workers): re-handing it then would only add duplicates to work that is already behind.
    """
    stale = now - settings.DISPATCH_STALE_AFTER
    unhanded = Q(handed_over_at__isnull=True)
    lost = Q(due_at__lt=(front or now) - settings.DISPATCH_STALE_AFTER, handed_over_at__lt=stale)
    with transaction.atomic():
        due = list(
            pending.select_for_update(skip_locked=True, of=("self",))
            .filter(due_at__lte=now + settings.DISPATCH_HORIZON)
            .filter(unhanded if backlog else unhanded | lost)
            .order_by("due_at")
            .values_list("id", "version", "due_at", "handed_over_at")[: settings.DISPATCH_PUMP_BATCH]
        )
        if not due:
            return 0
        pending.model.objects.filter(pk__in=[row[0] for row in due]).update(handed_over_at=now, **bookkeeping)
        lost = [row for row in due if row[3] is not None]
        if lost:
            logger.warning("re-handing %d %s row(s) whose hand-over was lost", len(lost), pending.model.__name__)
        if pending.model is ScheduledMessage:
            _log_lost_handovers(lost)
        handover.after_commit(enqueue, due, undo=partial(forget_handovers, pending.model, [row[0] for row in due], now))
    return len(due)


def _log_lost_handovers(rows) -> None:
    MessageEvent.objects.bulk_create(
        MessageEvent(
            message_id=row[0],
            from_status=Status.PENDING,
            to_status=Status.PENDING,
            actor="pump",
            detail=f"hand-over of version {row[1]} presumed lost (broker flushed or worker killed); handed over again",
        )
        for row in rows
    )


def pump_heartbeat(*, name: str) -> None:
    PumpHeartbeat.objects.update_or_create(pk=name, defaults={"beat_at": timezone.now()})
