"""Webhook signing (Standard Webhooks) and the one HTTP POST of an attempt, guarded against SSRF
(by outbound.py, which builds every outbound session).

Knows nothing of the models: it takes an id, a URL, a secret and a payload, and says what happened.
"""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from standardwebhooks import Webhook

from . import outbound

USER_AGENT = "scheduled-messages-webhooks/1.0"


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


def post(
    *, webhook_id: str, url: str, secret: str, payload: dict, timeout: float, allow_private: bool
) -> AttemptOutcome:
    body = json.dumps(payload, separators=(",", ":"))
    started = time.monotonic()
    http = outbound.http_session(timeout=timeout, guarded=not allow_private)
    try:
        response = http.post(
            url, data=body.encode(), headers=signed_headers(webhook_id=webhook_id, secret=secret, body=body)
        )
    except outbound.ForbiddenDestination as exc:
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
        retry_after=outbound.retry_after_seconds(response),
    )


def _failure_reason(response) -> str:
    if 300 <= response.status_code < 400:
        return f"HTTP {response.status_code}: redirects are not followed; only 2xx counts as delivered"
    return f"HTTP {response.status_code}"


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
