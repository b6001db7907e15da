from .base import HttpProviderTransport, OutgoingMessage, SendResult, TransportError


class WhatsAppCloudTransport(HttpProviderTransport):
    """Meta's WhatsApp Cloud API: POST {BASE_URL}/{PHONE_NUMBER_ID}/messages with a bearer token.

    Request format: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
    The Cloud API takes no idempotency key, so a send cut off mid-way is never repeated.
    """

    def __init__(self, *, TOKEN, PHONE_NUMBER_ID, BASE_URL="https://graph.facebook.com/v21.0", **options):
        super().__init__(**options)
        self.url = f"{BASE_URL.rstrip('/')}/{PHONE_NUMBER_ID}/messages"
        self.http.headers["Authorization"] = f"Bearer {TOKEN}"

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.to.endswith("@g.us"):
            raise TransportError("The WhatsApp Cloud API cannot send to groups", permanent=True)
        body = self.json_of(self.post(self.url, json=self.payload(message)))
        try:
            return SendResult(message_id=body["messages"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise TransportError(f"Unexpected WhatsApp Cloud API response: {body}", permanent=True) from None

    @staticmethod
    def payload(message: OutgoingMessage) -> dict:
        base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.to, "type": message.type}
        if message.type == "text":
            return {**base, "text": {"preview_url": False, "body": message.text}}
        if message.type == "template":
            return {**base, "template": cloud_template(message.template)}
        media = {"link": message.media}
        if message.caption:
            media["caption"] = message.caption
        return {**base, message.type: media}


def cloud_template(template: dict) -> dict:
    """The template object of the Cloud API: its language is {"policy": "deterministic", "code": …}."""
    cloud = {"name": template["name"], "language": {"policy": "deterministic", "code": template["language"]}}
    if template["components"]:
        cloud["components"] = template["components"]
    return cloud
