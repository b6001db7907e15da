"""Webhook signing (Standard Webhooks) and the one HTTP POST of an attempt, guarded against SSRF.

Knows nothing of the models: it takes an id, a URL, a secret and a payload, and says what happened.
"""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks import Webhook
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from .validation import is_public_address

USER_AGENT = "scheduled-messages-webhooks/1.0"


class ForbiddenDestination(Exception):
    """The URL resolved to an address the service must not call (private, loopback, link-local, metadata)."""


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None
    error: str
    duration_ms: int
    response_excerpt: str = ""
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def signed_headers(*, webhook_id: str, secret: str, body: str, now: datetime | None = None) -> dict:
    now = now or datetime.now(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id=webhook_id, timestamp=now, data=body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def post(*, webhook_id: str, url: str, secret: str, payload: dict, timeout: float, allow_private: bool) -> AttemptOutcome:
    body = json.dumps(payload, separators=(",", ":"))
    started = time.monotonic()
    http = _session(allow_private)
    try:
        response = http.post(
            url, data=body.encode(), headers=signed_headers(webhook_id=webhook_id, secret=secret, body=body),
            timeout=timeout, allow_redirects=False,
        )
    except ForbiddenDestination as exc:
        return AttemptOutcome(None, str(exc), _ms_since(started))
    except requests.Timeout:
        return AttemptOutcome(None, f"timed out after {timeout:g} s", _ms_since(started))
    except requests.RequestException as exc:
        return AttemptOutcome(None, f"could not connect: {exc.__class__.__name__}", _ms_since(started))
    finally:
        http.close()
    return AttemptOutcome(
        status_code=response.status_code,
        error="" if 200 <= response.status_code < 300 else _failure_reason(response),
        duration_ms=_ms_since(started),
        response_excerpt=response.text[:500],
        retry_after=_retry_after(response),
    )


def _failure_reason(response) -> str:
    if 300 <= response.status_code < 400:
        return f"HTTP {response.status_code}: redirects are not followed; only 2xx counts as delivered"
    return f"HTTP {response.status_code}"


def _retry_after(response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, Retry().parse_retry_after(value)) if value else None
    except Exception:
        return None


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _session(allow_private: bool) -> requests.Session:
    http = requests.Session()
    http.trust_env = False  # a proxy from the environment would hide the address we must check
    if not allow_private:
        adapter = _GuardedAdapter(max_retries=0)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
    return http


# --- SSRF guard at connect time ----------------------------------------------------------------
# Checked on the socket actually connected, after DNS, so a name that resolves (or re-resolves)
# to an internal address is refused too; validating the URL text alone would not catch that.


class _GuardedConnectionMixin:
    def _new_conn(self):
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        if not is_public_address(peer):
            sock.close()
            raise ForbiddenDestination(
                f"refused: {self.host} resolves to {peer}, a private, loopback or link-local address "
                "(set WEBHOOK_ALLOW_PRIVATE=1 for local development)"
            )
        return sock


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}
