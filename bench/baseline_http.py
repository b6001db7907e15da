"""What every baseline's job does when it runs: POST the message to the bench provider the way the
product's `http` transport does (scheduling/transports/http.py and base.py): the same JSON body
(`to`, `type`, `text`, `id`), `Idempotency-Key` = the message id, the same timeouts, no redirects, no
proxy lookups, one requests.Session per process, and an error on any non-2xx answer.

Kept free of Celery, RQ and Django so that either baseline's worker imports only what it needs.
"""

import requests

TO = "15550001234"
_session = None


def deliver(url: str, key: str, text: str) -> str:
    global _session
    if _session is None:  # made in the process that sends (after any fork), then kept
        _session = requests.Session()
        _session.trust_env = False
    response = _session.post(
        url,
        json={"to": TO, "type": "text", "text": text, "id": key},
        headers={"Idempotency-Key": key},
        timeout=(5.0, 15.0),
        allow_redirects=False,
    )
    response.raise_for_status()
    return response.json()["messageId"]
