from .base import HttpProviderTransport, OutgoingMessage, SendResult, TransportError


class TwilioTransport(HttpProviderTransport):
    """Twilio's Messages API: form-encoded POST to /2010-04-01/Accounts/{sid}/Messages.json.

    FROM is a Twilio sender such as `whatsapp:+14155238886` (WhatsApp) or `+14155238886` (SMS);
    the recipient gets the same channel prefix. https://www.twilio.com/docs/messaging/api/message-resource
    """

    def __init__(self, *, ACCOUNT_SID, AUTH_TOKEN, FROM, BASE_URL="https://api.twilio.com", **options):
        super().__init__(**options)
        self.url = f"{BASE_URL.rstrip('/')}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        self.http.auth = (ACCOUNT_SID, AUTH_TOKEN)
        self.sender = FROM

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.to.endswith("@g.us"):
            raise TransportError("Twilio cannot send to WhatsApp groups", permanent=True)
        if message.type == "template":
            # Twilio sends templates as its own Content resources (ContentSid), not Meta's template objects.
            raise TransportError("The twilio transport cannot send WhatsApp template messages", permanent=True)
        channel = "whatsapp:" if self.sender.startswith("whatsapp:") else ""
        form = {"To": f"{channel}+{message.to}", "From": self.sender}
        if message.type == "text":
            form["Body"] = message.text
        else:
            form["MediaUrl"] = message.media
            if message.caption:
                form["Body"] = message.caption
        body = self.json_of(self.post(self.url, data=form))
        if not body.get("sid"):
            raise TransportError(f"Unexpected Twilio response: {body}", permanent=True)
        return SendResult(message_id=body["sid"])
