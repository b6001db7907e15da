"""What one send hands its transport: which transport, the OutgoingMessage (a plain value: transports know
nothing of the models), the media host checked at send time, and the log fields every send line carries."""

from django.conf import settings

from .. import outbound
from ..models import ChannelAttempt, ScheduledMessage
from ..transports import OutgoingMessage, TransportError


def check_media_destination(outgoing: OutgoingMessage) -> None:
    """The provider (often a gateway inside our network) fetches the media: its host is checked now,
    as a webhook's is when connecting, since the name may resolve elsewhere than when it was scheduled."""
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    for link in media_links(outgoing):
        try:
            outbound.check_destination(link)
        except outbound.ForbiddenDestination as refused:
            raise TransportError(f"Media URL {refused}", permanent=True) from None


def media_links(outgoing: OutgoingMessage) -> list[str]:
    """The message's media and a template's header image, video or document."""
    links = [outgoing.media] if outgoing.media else []
    for component in (outgoing.template or {}).get("components", []):
        for parameter in component["parameters"]:
            media = parameter.get(parameter["type"])
            if isinstance(media, dict) and media.get("link"):
                links.append(media["link"])
    return links


def log_context(message: ScheduledMessage, **more) -> dict:
    return {"message_id": message.id, "session_id": str(message.session_id), **more}


def outgoing_message(message: ScheduledMessage, attempt: ChannelAttempt | None = None) -> OutgoingMessage:
    if attempt is None:
        return OutgoingMessage(
            idempotency_key=message.id,
            to=message.to,
            type=message.type,
            text=message.text,
            media=message.media,
            caption=message.caption,
            template=message.template,
        )
    return OutgoingMessage(
        idempotency_key=str(attempt.channel_message_id),
        to=message.to,
        channel=attempt.channel,
        sender=attempt.sender,
        **attempt.content,
    )


def transport_name(message: ScheduledMessage, attempt: ChannelAttempt | None) -> str:
    if attempt is None:
        return message.session.transport
    return message.session.channel_transports.get(attempt.channel) or settings.CHANNEL_TRANSPORTS[attempt.channel]
