"""`Idempotency-Key` on the creating POSTs of both API styles (draft-ietf-httpapi-idempotency-key-header,
and Stripe's practice): a retry of a request that succeeded gets its first answer again, byte for byte,
with `Idempotent-Replayed: true`, and creates nothing. The keys live in PostgreSQL (services/idempotency.py).
"""

import hashlib
import json
import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer

from .. import services

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_MAX = 255
# The draft's value is a Structured Field string ("…", printable ASCII); Stripe's is the bare text. Both are read.
QUOTED = re.compile(r'"((?:[^"\\]|\\["\\])*)"')
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")

PARAMETERS = [
    OpenApiParameter(
        HEADER,
        str,
        location=OpenApiParameter.HEADER,
        description=f"Up to {KEY_MAX} characters, unique per request you mean (a UUID): a retry with the same key "
        "and body gets the first answer again (with `Idempotent-Replayed: true`) and creates nothing. Kept "
        f"{settings.IDEMPOTENCY_KEY_TTL.total_seconds() / 3600:g} hours.",
    ),
    OpenApiParameter(
        REPLAYED,
        str,
        location=OpenApiParameter.HEADER,
        response=[201],
        description="`true` when this is the first answer to an earlier request with the same Idempotency-Key.",
    ),
]


class InvalidKey(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST


class KeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was already used with a different request; use a new key for a new request"


class KeyInUse(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "A request with this Idempotency-Key is still being processed; retry once it has finished"


def idempotent(request, session, create: Callable[[], HttpResponse]) -> HttpResponse:
    """`create()`'s answer, made once per key: a request without the header is simply created."""
    key = idempotency_key(request)
    if key is None:
        return create()
    try:
        claim = services.idempotency_key_claim(session=session, key=key, fingerprint=fingerprint(request))
    except services.IdempotencyKeyReused:
        raise KeyReused from None
    except services.IdempotencyKeyInUse:
        raise KeyInUse from None
    if isinstance(claim, services.IdempotentReplay):
        return HttpResponse(
            claim.body, status=claim.status, content_type="application/json", headers={REPLAYED: "true"}
        )
    return _first_answer(claim, create)


def _first_answer(claim, create) -> HttpResponse:
    try:
        with transaction.atomic():
            response = create()
            if not status.is_success(response.status_code):
                raise _NothingCreated(response)
            body = JSONRenderer().render(response.data).decode()
            services.idempotency_key_complete(record=claim, status=response.status_code, body=body)
    except services.IdempotencyKeyInUse:
        raise KeyInUse from None
    except _NothingCreated as refused:
        _release(claim)
        return refused.response
    except BaseException:
        _release(claim)
        raise
    return HttpResponse(body, status=response.status_code, content_type="application/json")


class _NothingCreated(Exception):
    def __init__(self, response):
        self.response = response


def _release(claim) -> None:
    try:
        services.idempotency_key_release(record=claim)
    except DatabaseError:
        # The database went away with the request: the key frees itself after ABANDONED_AFTER.
        logger.warning("could not release an idempotency key", exc_info=True)


def idempotency_key(request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    raw = raw.strip()
    quoted = QUOTED.fullmatch(raw)
    key = re.sub(r"\\(.)", r"\1", quoted.group(1)) if quoted else raw
    if not key:
        raise InvalidKey(f"{HEADER} must not be empty")
    if len(key) > KEY_MAX:
        raise InvalidKey(f"{HEADER} must be at most {KEY_MAX} characters (it has {len(key)})")
    if not PRINTABLE_ASCII.fullmatch(key):
        raise InvalidKey(f"{HEADER} must be printable ASCII (a UUID is a good key)")
    return key


def fingerprint(request) -> str:
    """What makes two requests the same one: method, path and the JSON body as parsed (so spacing and the
    order of an object's keys do not matter)."""
    canonical = json.dumps([request.method, request.path, request.data], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
