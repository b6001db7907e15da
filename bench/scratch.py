"""A run's scratch stores on the shared servers: its own database and its own Redis DBs, emptied before
use and released at the end."""

import sys

import redis
from product import migrate


def create_database(pg, name):
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def fresh_database(pg, name, env):
    """The run's database on the shared server, dropped and created, then migrated by the product."""
    print(f"database {name}: create and migrate", flush=True)
    create_database(pg, name)
    migrate(env)


def drop_database(pg, name):
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scratch_redis(server, db):
    """A client of Redis DB `db` of the server, flushed: the run's own from here on."""
    client = redis.Redis.from_url(f"{server}/{db}")
    client.flushdb()
    return client


def release_scratch(pg_url, db_name, redis_urls, drop_db=True):
    """The end of a run: flush its Redis DBs and drop its database, never masking the run's own error."""
    for url in redis_urls:
        try:
            redis.Redis.from_url(url).flushdb()
        except Exception as exc:
            print(f"could not flush Redis {url}: {exc}", file=sys.stderr)
    if not drop_db:
        return
    try:
        from django.db import connections

        connections.close_all()
    except Exception:
        pass
    try:
        drop_database(pg_url, db_name)
    except Exception as exc:
        print(f"could not drop database {db_name}: {exc}", file=sys.stderr)
