"""Idempotency keys of the creating POSTs (draft-ietf-httpapi-idempotency-key-header, Stripe's practice).

A key is claimed in a transaction of its own, so that a second request with it sees the first one running
(409) instead of waiting for it; the first request's answer is recorded in the transaction that creates
what it reports, so the two commit together or not at all. Only a successful answer is kept: one that
created nothing (a 400, a 503) frees the key, and the same request may simply be sent again.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import IdempotencyKey, Session

# A first request that still holds its key after this long died with its process (gunicorn's own time
# limit is 30 s): the next request with the key takes it over instead of getting 409 until it expires.
ABANDONED_AFTER = timedelta(seconds=60)


class IdempotencyKeyReused(Exception):
    """The key was first used with another request (method, path or body): 422."""


class IdempotencyKeyInUse(Exception):
    """The first request with the key is still running: 409."""


@dataclass(frozen=True)
class IdempotentReplay:
    status: int
    body: str


def idempotency_key_claim(*, session: Session, key: str, fingerprint: str) -> IdempotencyKey | IdempotentReplay:
    """The key, claimed for this request (locked), or the first request's answer to replay."""
    now = timezone.now()
    with transaction.atomic():
        IdempotencyKey.objects.filter(session=session, key=key, expires_at__lte=now).delete()
        record, created = IdempotencyKey.objects.get_or_create(
            session=session,
            key=key,
            defaults={
                "fingerprint": fingerprint,
                "locked_at": now,
                "created_at": now,
                "expires_at": now + settings.IDEMPOTENCY_KEY_TTL,
            },
        )
    if created:
        return record
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused
    if record.response_status is not None:
        return IdempotentReplay(status=record.response_status, body=record.response_body)
    return _take_over(record, now)


def _take_over(record: IdempotencyKey, now: datetime) -> IdempotencyKey:
    """The key is held by a request still running, or by one whose process died: only the latter is taken."""
    if record.locked_at is not None and record.locked_at > now - ABANDONED_AFTER:
        raise IdempotencyKeyInUse
    taken = IdempotencyKey.objects.filter(pk=record.pk, locked_at=record.locked_at, response_status=None).update(
        locked_at=now
    )
    if not taken:
        raise IdempotencyKeyInUse
    record.locked_at = now
    return record


def idempotency_key_complete(*, record: IdempotencyKey, status: int, body: str) -> None:
    """Keep the answer, in the transaction that made what it reports. Another request that took the key
    over meanwhile (this one ran past ABANDONED_AFTER) wins: this one is rolled back (409)."""
    kept = IdempotencyKey.objects.filter(pk=record.pk, locked_at=record.locked_at, response_status=None).update(
        locked_at=None, response_status=status, response_body=body
    )
    if not kept:
        raise IdempotencyKeyInUse


def idempotency_key_release(*, record: IdempotencyKey) -> None:
    """The request created nothing: the key is free again."""
    IdempotencyKey.objects.filter(pk=record.pk, locked_at=record.locked_at, response_status=None).delete()


def idempotency_keys_purge(now: datetime) -> int:
    """Forget keys past their time (IDEMPOTENCY_KEY_HOURS), a batch at a time."""
    expired = IdempotencyKey.objects.filter(expires_at__lte=now).values_list("pk", flat=True)[:1000]
    deleted, _ = IdempotencyKey.objects.filter(pk__in=list(expired)).delete()
    return deleted
