import json

from django.conf import settings
from django.core.management.base import BaseCommand

from ... import services
from .create_session import session_credentials

DEMO_FILE = settings.VAR_DIR / "demo-session.json"


class Command(BaseCommand):
    help = (
        "For local first use: make sure a 'demo' session exists and print its id and API key. "
        "The key is kept in var/demo-session.json (local development only) so it stays the same across runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--pretty", action="store_true", help="Print for a person, with a curl example.")
        parser.add_argument("--port", type=int, default=settings.PORT)

    def handle(self, *args, pretty, port, **options):
        credentials = self.saved_credentials()
        if credentials is None:
            credentials = session_credentials(services.session_create(name="demo"))
            DEMO_FILE.parent.mkdir(parents=True, exist_ok=True)
            DEMO_FILE.write_text(json.dumps(credentials))
            DEMO_FILE.chmod(0o600)
        self.stdout.write(self.pretty(credentials, port) if pretty else json.dumps(credentials))

    @staticmethod
    def pretty(credentials, port):
        base = f"http://localhost:{port}"
        return (
            f"\nDemo session id: {credentials['id']}\nDemo API key:    {credentials['apiKey']}\n"
            f"Omnimessage API (basic auth, {base}/v1): {credentials['apiUsername']} / {credentials['apiPassword']}\n"
            f"Webhook secret:  {credentials['webhookSecret']}\n\n"
            f"Try it:\n  curl -X POST {base}/sessions/{credentials['id']}/scheduled \\\n"
            f'    -H "X-API-Key: {credentials["apiKey"]}" -H "Content-Type: application/json" \\\n'
            f'    -d \'{{"to": "919988066776", "text": "Hello", '
            f"\"scheduledAt\": \"'$(date -u -d '+1 min' +%FT%TZ)'\"}}'\n"
            f"API docs: {base}/api/docs/   Admin: {base}/admin/ (DEBUG=1 .venv/bin/python manage.py createsuperuser)\n"
        )

    @staticmethod
    def saved_credentials():
        if not DEMO_FILE.exists():
            return None
        credentials = json.loads(DEMO_FILE.read_text())
        key = services.api_key_authenticate(raw=credentials["apiKey"])
        if key is None or str(key.session_id) != credentials["id"]:
            return None
        return credentials
