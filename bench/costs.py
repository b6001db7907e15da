"""What a phase cost, per message: PostgreSQL transactions and row writes of the run's database
(pg_stat_database: exact, the database is the run's own), Redis commands (INFO commandstats: server-wide, so
exact only on a Redis of the run's own, e.g. `--redis redis://127.0.0.1:PORT` of a redis-server started for
it), and the workers' and the pump's CPU time (/proc). docs/DEPLOYMENT.md builds its capacity model on these."""

import time

from procfs import tree_cpu_seconds

# PostgreSQL (15) backends publish their table counters at most once a second, and an idle one within 10 s:
# a phase's last writes are in pg_stat_database this long after it ends.
STATS_FLUSHED_AFTER_S = 11.0

POSTGRES_COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted", "tup_returned", "tup_fetched")


def snapshot(redis_client, workers, pump, *, settle: str = "") -> dict:
    """The counters now. PostgreSQL's trail the writes: `settle="before"` waits for the writes made so far
    to be published, then reads everything (a phase's start); `settle="after"` reads the rest, then waits and
    reads PostgreSQL's (a phase's end), so that neither wait adds idle CPU or Redis calls to the phase."""
    if settle == "before":
        time.sleep(STATS_FLUSHED_AFTER_S)
    taken = {
        "redis": redis_calls(redis_client),
        "worker_cpu_s": sum(tree_cpu_seconds(worker.pid) for worker in workers),
        "pump_cpu_s": tree_cpu_seconds(pump.pid),
    }
    if settle == "after":
        time.sleep(STATS_FLUSHED_AFTER_S)
    return {**taken, "postgres": postgres_counters()}


def postgres_counters() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # this transaction's cached figures would not move
        cursor.execute(
            f"SELECT {', '.join(POSTGRES_COUNTERS)} FROM pg_stat_database WHERE datname = current_database()"
        )
        return dict(zip(POSTGRES_COUNTERS, cursor.fetchone(), strict=True))


def redis_calls(client) -> dict:
    """Calls so far per command (`INFO commandstats`), the server's own since it started."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def per_message(before: dict, after: dict, messages: int) -> dict:
    """The difference between two snapshots, per message; the Redis commands most called first."""
    if not messages:
        return {}
    postgres = {name: (after["postgres"][name] - before["postgres"][name]) / messages for name in POSTGRES_COUNTERS}
    calls = {name: count - before["redis"].get(name, 0) for name, count in after["redis"].items()}
    calls = {name: count / messages for name, count in sorted(calls.items(), key=lambda item: -item[1]) if count}
    worker_cpu_s = after["worker_cpu_s"] - before["worker_cpu_s"]
    return {
        "messages": messages,
        "postgres_per_message": postgres,
        "postgres_row_writes_per_message": sum(
            postgres[name] for name in ("tup_inserted", "tup_updated", "tup_deleted")
        ),
        "redis_calls_per_message": sum(calls.values()),
        "redis_commands_per_message": calls,
        "worker_cpu_ms_per_message": worker_cpu_s * 1000 / messages,
        "messages_per_worker_cpu_s": messages / worker_cpu_s if worker_cpu_s else None,
        "pump_cpu_ms_per_message": (after["pump_cpu_s"] - before["pump_cpu_s"]) * 1000 / messages,
    }
