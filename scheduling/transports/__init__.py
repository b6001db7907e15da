"""Named transports from settings.TRANSPORTS, built once per process."""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import OutgoingMessage, SendResult, Transport, TransportError

__all__ = ["OutgoingMessage", "SendResult", "Transport", "TransportError", "get_transport", "transport_names"]


def transport_names() -> list[str]:
    return sorted(settings.TRANSPORTS)


@cache
def get_transport(name: str) -> Transport:
    try:
        config = settings.TRANSPORTS[name]
    except KeyError:
        raise TransportError(f"No transport named {name!r} is configured", permanent=True) from None
    return import_string(config["BACKEND"])(**config.get("OPTIONS", {}))
