import logging
import uuid

from .base import OutgoingMessage, SendResult, Transport

logger = logging.getLogger(__name__)


class ConsoleTransport(Transport):
    """The zero-configuration default: writes the message to the log instead of sending it."""

    def send(self, message: OutgoingMessage) -> SendResult:
        provider_id = f"console-{uuid.uuid4().hex[:16]}"
        logger.info(
            "console transport: message %s to %s (%s): %s",
            message.idempotency_key,
            message.to,
            message.type,
            message.text or message.media or (message.template or {}).get("name"),
        )
        return SendResult(message_id=provider_id)
