"""The test run's broker, whichever it is (settings.CELERY_BROKER_URL): Redis by default, RabbitMQ in the
second pass of `make test` (TEST_RABBITMQ_URL; the fleet tests marked `rabbitmq`). Each is the run's own:
a Redis database, or a RabbitMQ virtual host, which the tests empty, and may wipe, at will."""

import os
import shutil
import subprocess
from urllib.parse import quote, unquote, urlsplit

import redis
from kombu import Connection

QUEUE = "celery"  # the default queue, where every task that is due lands


class RedisBroker:
    kind = "redis"

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url)

    def flush(self):
        """Everything the broker held is gone, as after a restart without persistence."""
        self.client.flushdb()

    def waiting(self) -> int:
        """Tasks waiting in the queue for a worker."""
        return self.client.llen(QUEUE)


class RabbitBroker:
    kind = "amqp"

    def __init__(self, url: str):
        self.url = url
        parts = urlsplit(url)
        self.vhost = unquote(parts.path[1:]) or "/"
        self.user = unquote(parts.username or "guest")

    def flush(self):
        """Everything the broker held is gone, as a node replaced without its disk: the virtual host is
        deleted (every connection to it closes) and made again, empty."""
        self.ctl("delete_vhost", self.vhost, check=False)
        self.create()

    def create(self):
        """The virtual host, made if it is not there, open to the URL's user."""
        self.ctl("add_vhost", self.vhost, check=False)  # refused only when it is there already
        self.ctl("set_permissions", "-p", self.vhost, self.user, ".*", ".*", ".*")

    def delete(self):
        self.ctl("delete_vhost", self.vhost, check=False)

    def url_at(self, host: str, port: int) -> str:
        """This virtual host's URL through another address (a relay)."""
        parts = urlsplit(self.url)
        return parts._replace(netloc=f"{parts.username}:{parts.password}@{host}:{port}").geturl()

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 5672

    def waiting(self) -> int:
        with Connection(self.url) as connection, connection.channel() as channel:
            try:
                return channel.queue_declare(queue=QUEUE, passive=True).message_count
            except connection.channel_errors:
                return 0

    @staticmethod
    def ctl(*argv: str, check: bool = True):
        subprocess.run(["rabbitmqctl", "--quiet", *argv], check=check, capture_output=True, timeout=60)


def rabbitmqctl_available() -> bool:
    return shutil.which("rabbitmqctl") is not None


def rabbitmq_unavailable() -> str:
    """Why a test cannot have a RabbitMQ virtual host of its own ("" when it can)."""
    if not os.environ.get("TEST_RABBITMQ_URL"):
        return "TEST_RABBITMQ_URL is not set (make test TEST_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/VHOST)"
    if not rabbitmqctl_available():
        return "rabbitmqctl is not on PATH: a test makes its own virtual host with it"
    return ""


def own_rabbitmq(vhost: str) -> RabbitBroker:
    """A virtual host of the test's own on TEST_RABBITMQ_URL's server, made empty (`delete` it afterwards)."""
    parts = urlsplit(os.environ["TEST_RABBITMQ_URL"])
    broker = RabbitBroker(parts._replace(path="/" + quote(vhost, safe="")).geturl())
    broker.flush()
    return broker


def for_url(url: str):
    return RabbitBroker(url) if url.startswith("amqp") else RedisBroker(url)
