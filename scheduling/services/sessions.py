"""Sessions and their credentials: API keys (session API) and basic-auth credentials (Messente's API).

Secrets are shown once and stored as a SHA-256 (keys carry 256 random bits, so a fast hash is safe);
candidates are compared in constant time. What a secret cannot look like is refused before any query.
"""

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from ..models import ApiCredential, ApiKey, MessageStatus, Session

API_KEY_PREFIX = "wask_"


API_KEY_LOOKUP_CHARS = 12


# The shapes api_key_create and api_credential_create make: anything else is refused before a query,
# so that a NUL (which PostgreSQL cannot hold) in a header answers 401, not 500.
API_KEY_SHAPE = re.compile(r"wask_[A-Za-z0-9_-]{43}")


API_USERNAME_SHAPE = re.compile(r"om_[0-9a-f]{16}")


LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewSession:
    session: Session
    api_key: str  # shown once, never stored
    api_username: str  # the Messente-compatible API's basic auth
    api_password: str  # shown once, never stored


def session_create(
    *,
    name: str,
    webhook_url: str = "",
    transport: str = "default",
    active: bool = True,
    send_rate: str = "",
    api_rate_limit: str = "",
    max_lateness_seconds: int | None = None,
) -> NewSession:
    with transaction.atomic():
        session = Session.objects.create(
            name=name,
            webhook_url=webhook_url,
            transport=transport,
            active=active,
            send_rate=send_rate,
            api_rate_limit=api_rate_limit,
            max_lateness_seconds=max_lateness_seconds,
            webhook_secret=new_webhook_secret(),
        )
        _, api_key = api_key_create(session=session, label="initial")
        credential, password = api_credential_create(session=session)
    return NewSession(session=session, api_key=api_key, api_username=credential.username, api_password=password)


def new_webhook_secret() -> str:
    # Standard Webhooks form: `whsec_` + base64 of the key bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def session_rotate_webhook_secret(*, session: Session) -> str:
    """A new signing secret, in force at once; returned to be shown once."""
    session.webhook_secret = new_webhook_secret()
    Session.objects.filter(pk=session.pk).update(webhook_secret=session.webhook_secret)
    return session.webhook_secret


def session_enable_webhooks(*, session: Session) -> None:
    """Lift the stop a 410 Gone put on the session's endpoint."""
    session.webhook_disabled_at = None
    Session.objects.filter(pk=session.pk).update(webhook_disabled_at=None)


def session_stop_webhooks(*, session_id, at: datetime) -> None:
    """The endpoint answered 410 Gone: no more webhooks for the session until an operator resumes them."""
    Session.objects.filter(pk=session_id).update(webhook_disabled_at=at)


def session_pause(*, session: Session) -> None:
    """Hold all sending for the session: due messages stay pending until it resumes."""
    session.paused_at = timezone.now()
    Session.objects.filter(pk=session.pk, paused_at__isnull=True).update(paused_at=session.paused_at)


def session_resume(*, session: Session) -> None:
    """Resume sending; what fell due meanwhile goes out at the pump's next pass (late, never lost). Its
    hand-overs were skipped by their ticks' tasks, so they are marked for the pump to make again."""
    session.paused_at = None
    with transaction.atomic():
        Session.objects.filter(pk=session.pk).update(paused_at=None)
        session.messages.filter(status=MessageStatus.PENDING, handed_over_at__isnull=False).update(handed_over_at=None)


def api_key_rotate(*, session: Session, label: str = "") -> str:
    """A new key, and every older key of the session revoked at once; returned to be shown once."""
    with transaction.atomic():
        ApiKey.objects.filter(session=session, revoked_at__isnull=True).update(revoked_at=timezone.now())
        _, raw = api_key_create(session=session, label=label)
    return raw


def api_key_create(*, session: Session, label: str = "") -> tuple[ApiKey, str]:
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        session=session, prefix=raw[:API_KEY_LOOKUP_CHARS], hashed_key=_hash_key(raw), label=label
    )
    return api_key, raw


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The live key matching `raw`, compared in constant time; None when there is none."""
    if not API_KEY_SHAPE.fullmatch(raw):
        return None
    hashed = _hash_key(raw)
    candidates = ApiKey.objects.select_related("session").filter(
        prefix=raw[:API_KEY_LOOKUP_CHARS], revoked_at__isnull=True
    )
    match = next((key for key in candidates if hmac.compare_digest(key.hashed_key, hashed)), None)
    if match is not None:
        _touch_last_used(match)
    return match


def _hash_key(raw: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe here (no dictionary to attack).
    return hashlib.sha256(raw.encode()).hexdigest()


def _touch_last_used(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def api_credential_create(*, session: Session) -> tuple[ApiCredential, str]:
    """Basic-auth username and password for the Messente-compatible API; the password is shown once."""
    password = secrets.token_urlsafe(24)
    credential = ApiCredential.objects.create(
        session=session, username=f"om_{secrets.token_hex(8)}", hashed_password=_hash_key(password)
    )
    return credential, password


def api_credential_revoke(*, credential: ApiCredential) -> None:
    ApiCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_credential_authenticate(*, username: str, password: str) -> ApiCredential | None:
    if not API_USERNAME_SHAPE.fullmatch(username):
        return None
    credential = (
        ApiCredential.objects.select_related("session").filter(username=username, revoked_at__isnull=True).first()
    )
    if credential is None or not hmac.compare_digest(credential.hashed_password, _hash_key(password)):
        return None
    return credential
