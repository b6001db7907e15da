from dataclasses import asdict

from .base import HttpProviderTransport, OutgoingMessage, SendResult, TransportError


class HttpTransport(HttpProviderTransport):
    """POSTs the message as JSON to OPTIONS["URL"] (a self-hosted gateway, or an adapter).

    The `Idempotency-Key` header is the message id; a gateway that honours it makes resends safe.
    2xx with `messageId` or `id` in a JSON body is success; 408/429/5xx/timeouts are temporary;
    other 4xx are permanent.
    """

    def __init__(self, *, URL, IDEMPOTENT=True, HEADERS=None, **options):
        super().__init__(**options)
        self.url = URL
        self.idempotent = IDEMPOTENT
        self.headers = HEADERS or {}

    def send(self, message: OutgoingMessage) -> SendResult:
        payload = {key: value for key, value in asdict(message).items() if value and key != "idempotency_key"}
        payload["id"] = message.idempotency_key
        response = self.post(
            self.url, json=payload, headers={"Idempotency-Key": message.idempotency_key, **self.headers}
        )
        body = self.json_of(response)
        provider_id = body.get("messageId") or body.get("id")
        if not provider_id:
            raise TransportError("Provider accepted the request but returned no messageId or id", permanent=True)
        return SendResult(message_id=str(provider_id))
