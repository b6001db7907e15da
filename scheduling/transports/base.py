"""What a transport is: it sends one message and returns the provider's id, or raises TransportError.

Transports take a plain OutgoingMessage and import nothing of the models, so they stand alone.
"""

from dataclasses import dataclass

import requests

from .. import outbound


@dataclass(frozen=True)
class OutgoingMessage:
    idempotency_key: str  # the message id: the same on every attempt, so a provider can deduplicate
    to: str  # E.164 digits without '+', or a WhatsApp group id `…@g.us`
    type: str
    text: str = ""
    media: str = ""
    caption: str = ""
    template: dict | None = None  # type "template": {"name", "language", "components"} (the session API's form)
    channel: str = ""  # sms, viber or whatsapp for omnimessages; empty for the session API
    sender: str = ""


@dataclass(frozen=True)
class SendResult:
    message_id: str


class TransportError(Exception):
    """`rate_limited`: the provider refused for its throughput limit (HTTP 429, WhatsApp 130429, Twilio
    20429): the sender cools down fleet-wide, and the message goes again after it, not counted as an attempt."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None, rate_limited: bool = False
    ):
        super().__init__(message)
        self.permanent = permanent and not rate_limited
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class Transport:
    # True when sending the same idempotency key twice cannot deliver twice: only then may a
    # message whose worker died mid-send be sent again (docs/ARCHITECTURE.md, leases).
    idempotent = False

    def __init__(self, **options):
        self.options = options

    def send(self, message: OutgoingMessage) -> SendResult:
        raise NotImplementedError


TEMPORARY_STATUSES = {408, 425, 429}
RATE_LIMIT_CODES = {130429, 20429}  # WhatsApp Cloud's and Twilio's "too many messages" error codes
# WhatsApp's "re-engagement message": a free-form message outside the 24-hour customer-service window. Sending it
# again cannot help; a template can (README, "WhatsApp templates").
REENGAGEMENT_REQUIRED = 131047
REENGAGEMENT_REASON = (
    "WhatsApp error 131047 (re-engagement message): more than 24 hours have passed since the recipient last "
    "wrote, so only a template message may be sent to them"
)


class HttpProviderTransport(Transport):
    """Shared plumbing for providers reached over HTTP: the outbound session (timeouts, no redirects,
    shared by a worker's sending threads), status mapping. The provider's URL is the operator's, so it
    is not held to the SSRF guard."""

    # CONNECTIONS: keep-alive connections to the provider, one per send in flight (SEND_CONCURRENCY's default).
    def __init__(self, TIMEOUT=15.0, CONNECTIONS=100, **options):
        super().__init__(**options)
        self.timeout = (min(5.0, TIMEOUT), TIMEOUT)
        self.http = outbound.http_session(timeout=self.timeout, guarded=False, connections=CONNECTIONS)

    def post(self, url: str, **kwargs) -> requests.Response:
        try:
            response = self.http.post(url, **kwargs)
        except requests.Timeout:
            raise TransportError(f"Timed out after {self.timeout[1]:g} s waiting for {url}") from None
        except requests.ConnectionError as exc:
            raise TransportError(f"Could not connect to {url}: {exc.__class__.__name__}") from None
        code = _error_code(response)
        if code == REENGAGEMENT_REQUIRED:
            raise TransportError(REENGAGEMENT_REASON, permanent=True)
        rate_limited = response.status_code == 429 or code in RATE_LIMIT_CODES
        if rate_limited or response.status_code in TEMPORARY_STATUSES or response.status_code >= 500:
            raise TransportError(
                f"Provider answered HTTP {response.status_code}: {response.text[:200]}",
                retry_after=outbound.retry_after_seconds(response),
                rate_limited=rate_limited,
            )
        if not 200 <= response.status_code < 300:
            raise TransportError(
                f"Provider refused the message with HTTP {response.status_code}: {response.text[:500]}",
                permanent=True,
            )
        return response

    @staticmethod
    def json_of(response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TransportError(f"Provider answered HTTP {response.status_code} without a JSON object", permanent=True)
        return body


def _error_code(response: requests.Response) -> int | None:
    """The provider's own error code in a refusal's JSON body (`error.code`, or Twilio's top-level `code`)."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else body.get("code")
    return code if isinstance(code, int) else None
