"""The test run's broker, whichever it is (settings.CELERY_BROKER_URL): Redis by default, RabbitMQ in the
second pass of `make test` (TEST_RABBITMQ_URL; the fleet tests marked `rabbitmq`). Each is the run's own:
a Redis database, or a RabbitMQ virtual host, which the tests empty, and may wipe, at will."""

import shutil
import subprocess
from urllib.parse import unquote, urlsplit

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


def for_url(url: str):
    return RabbitBroker(url) if url.startswith("amqp") else RedisBroker(url)
