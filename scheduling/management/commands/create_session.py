import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from ... import services
from ...rates import parse_rate
from ...transports import transport_names
from ...validation import check_public_url


class Command(BaseCommand):
    help = "Create a session and print its id, API key and webhook secret (shown once) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--webhook-url", default="")
        parser.add_argument("--transport", default="default")
        parser.add_argument(
            "--send-rate", default="", help='fleet-wide send rate of the session: "20/s", "30/min" (default: unpaced)'
        )

    def handle(self, *args, name, webhook_url, transport, send_rate, **options):
        if webhook_url:
            try:
                URLValidator(schemes=["http", "https"])(webhook_url)
                check_public_url(webhook_url)
            except ValidationError as exc:
                raise CommandError(f"--webhook-url {webhook_url!r}: {' '.join(exc.messages)}") from None
        if transport not in transport_names():
            raise CommandError(f"Unknown transport {transport!r}; configured: {', '.join(transport_names())}")
        try:
            parse_rate(send_rate)
        except ValueError as exc:
            raise CommandError(f"--send-rate: {exc}") from None
        created = services.session_create(name=name, webhook_url=webhook_url, transport=transport, send_rate=send_rate)
        self.stdout.write(json.dumps(session_credentials(created)))


def session_credentials(created: services.NewSession) -> dict:
    session = created.session
    return {
        "id": str(session.id),
        "name": session.name,
        "apiKey": created.api_key,
        "apiUsername": created.api_username,
        "apiPassword": created.api_password,
        "webhookSecret": session.webhook_secret,
        "webhookUrl": session.webhook_url,
        "transport": session.transport,
        "sendRate": session.send_rate,
    }
