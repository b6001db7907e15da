import os
import signal
import sys
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

from scheduling import services

from . import brokers
from .factories import key_client
from .support import ProviderServer


def pytest_configure(config):
    # A stopped run (CI's timeout, `kill`) unwinds like Ctrl-C, so that fixtures stop the processes and
    # throwaway servers they started instead of leaving them running.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(*_):
    raise KeyboardInterrupt


def pytest_sessionstart(session):
    """Without PostgreSQL or Redis every test would fail with a connection traceback: say once, at the
    start, which one is missing and what to do, and stop."""
    missing = [problem for problem in (postgres_problem(), redis_problem(), rabbitmq_problem()) if problem]
    if missing:
        print("\n".join(["", *missing, HOW_TO_GET_THEM]), file=sys.stderr)
        pytest.exit("no test was run: PostgreSQL, Redis or RabbitMQ is missing (above)", returncode=3)


HOW_TO_GET_THEM = (
    "make test needs PostgreSQL (user postgres, trust auth) and Redis. Start them (on Debian:"
    " `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` and"
    " `redis-server --daemonize yes`; packages postgresql and redis-server), or point TEST_DATABASE_URL and"
    " TEST_REDIS_URL at running ones. The RabbitMQ pass (TEST_RABBITMQ_URL) needs RabbitMQ (`rabbitmq-server"
    " -detached`) and rabbitmqctl on this machine: it makes the URL's virtual host, and empties it."
)


def postgres_problem() -> str | None:
    db = settings.DATABASES["default"]
    try:
        psycopg.connect(
            host=db["HOST"],
            port=db["PORT"] or 5432,
            user=db["USER"],
            password=db["PASSWORD"],
            dbname=db["NAME"],
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {db['HOST']}:{db['PORT'] or 5432} cannot be used: {str(exc).splitlines()[0]}"
    return None


def redis_problem() -> str | None:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {settings.REDIS_URL} cannot be used: {exc}"
    return None


def rabbitmq_problem() -> str | None:
    """On the RabbitMQ pass: the run's virtual host is made (if it is not there) and can be used."""
    if settings.BROKER_KIND != "amqp":
        return None
    if not brokers.rabbitmqctl_available():
        return "rabbitmqctl is not on PATH: the RabbitMQ pass makes and empties its virtual host with it"
    try:
        brokers.RabbitBroker(settings.BROKER_URL).create()
        with Connection(settings.BROKER_URL, connect_timeout=3) as broker:
            broker.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        return f"RabbitMQ at {maybe_sanitize_url(settings.BROKER_URL)} cannot be used: {exc}"
    return None


FLEET_TESTS = Path(__file__).parent / "fleet"


@pytest.hookimpl(trylast=True)  # after pytest-django's own ordering, which this keeps within each group
def pytest_collection_modifyitems(items):
    """Everything under tests/fleet/ (tests that start workers, the pump or the Procfile's processes) runs
    after every in-process test, and of those the users of the shared fleet run last. The fleet lives for
    the rest of the session and works on the test database; the tests before it then never have it
    sending or pumping under them, and the deployments of their own start on an idle machine."""
    items.sort(key=lambda item: (item.path.is_relative_to(FLEET_TESTS) or uses_fleet(item), uses_fleet(item)))


def uses_fleet(item) -> bool:
    return "fleet" in getattr(item, "fixturenames", ())


@pytest.fixture
def new_session(db):
    """A session and its API key, as `create_session` makes them."""
    return services.session_create(name="acme")


@pytest.fixture
def api(new_session):
    return key_client(new_session.api_key)


@pytest.fixture
def scheduled_url(new_session):
    return f"/sessions/{new_session.session.id}/scheduled"


@pytest.fixture
def account(db):
    """A session, for its credentials of the Messente-compatible API."""
    return services.session_create(name="messente-user")


@pytest.fixture
def operator(db, client):
    """A logged-in superuser's browser on the admin."""
    # No password: hashing one costs most of a second, and force_login needs none.
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", None))
    return client


# --- Webhooks: a real local receiver ---------------------------------------------------------------


@pytest.fixture(scope="session")
def receiver():
    with ProviderServer() as server:
        yield server


@pytest.fixture
def hooked(db, receiver):
    """A session whose webhook URL is the local receiver, with an API client for it."""
    receiver.reset()
    created = services.session_create(name="hooked", webhook_url=receiver.url)
    return created, key_client(created.api_key), f"/sessions/{created.session.id}/scheduled"


# --- Dispatch: a real provider server, Celery worker and pump ---------------------------------


@pytest.fixture(scope="session")
def provider():
    with ProviderServer() as server:
        yield server


@pytest.fixture(scope="session")
def channel_providers():
    """One provider per omnimessage channel, as separate services would be."""
    servers = {channel: ProviderServer().start() for channel in ("sms", "viber", "whatsapp")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="session")
def service_env(django_db_setup, provider, channel_providers):
    """The environment of the worker and pump processes: the test database, the provider."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "TRANSPORT_URL": provider.url,
        **{f"{channel.upper()}_TRANSPORT_URL": server.url for channel, server in channel_providers.items()},
        "PYTHONUNBUFFERED": "1",
        # Each test's teardown TRUNCATEs every table while the fleet may be mid-transaction: should the two
        # deadlock, the fleet's side (which detects it first with this) is the one aborted, never the
        # teardown. A send aborted this way is left to lease recovery, as after any database error.
        "PGOPTIONS": "-c deadlock_timeout=100ms",
    }


@pytest.fixture(scope="session")
def broker():
    """The run's broker (tests/brokers.py), emptied."""
    run_broker = brokers.for_url(settings.CELERY_BROKER_URL)
    run_broker.flush()
    return run_broker
