"""Connections to Redis from a URL: the shared store (REDIS_URL: fleet-wide metrics, pacing, the tick keys)
and, when the broker is Redis, the broker's own database (where the "handovers kept" marker lives).

A URL is `redis://…` or `rediss://…`, or Redis Sentinel's `sentinel://host:26379;sentinel://host:26380`
(optionally `sentinel://:password@host:26379/db`: the master's password and database), the form kombu
reads for the broker, with the master's name given apart (SENTINEL_MASTER_NAME). A Sentinel client asks
the sentinels which server is the master when it connects, and again after a failover breaks its
connections, so every command goes to the master of the moment.
"""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from django.conf import settings
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379


def shared(*, timeout: float) -> redis.Redis | None:
    """The shared store (REDIS_URL); None in the zero-configuration mode, which has none."""
    if not settings.REDIS_URL:
        return None
    return connect(settings.REDIS_URL, master_name=settings.SENTINEL_MASTER_NAME, timeout=timeout)


def connect(url: str, *, master_name: str = "", timeout: float) -> redis.Redis:
    """A client of the Redis at `url` (a plain or a Sentinel URL) that gives up on a server after `timeout`."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    sentinels = SentinelUrl.parse(url)
    manager = Sentinel(
        sentinels.addresses,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    return manager.master_for(
        master_name,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        password=sentinels.password,
        db=sentinels.db,
    )


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


@dataclass(frozen=True)
class SentinelUrl:
    """`sentinel://[:password@]host:port[/db];sentinel://…`: the sentinels' addresses, and the master's
    password and database (taken from whichever part names them, as kombu does)."""

    addresses: list[tuple[str, int]]
    password: str | None
    db: int

    @classmethod
    def parse(cls, url: str) -> "SentinelUrl":
        parts = [urlsplit(part.strip()) for part in url.split(";") if part.strip()]
        if not parts or any(part.scheme != SENTINEL_SCHEME or not part.hostname for part in parts):
            raise ValueError("not a list of sentinel://host:port addresses separated by ';'")  # no password shown
        password = next((unquote(part.password) for part in parts if part.password), None)
        db = next((part.path.strip("/") for part in parts if part.path.strip("/")), "0")
        if not db.isdigit():
            raise ValueError(f"the database of a sentinel URL must be a number, not {db!r}")
        return cls([(part.hostname, part.port or DEFAULT_SENTINEL_PORT) for part in parts], password, int(db))
