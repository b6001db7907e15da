"""RQ's built-in scheduler, as a baseline: `queue.enqueue_at(scheduledAt, post, …)` when a message is
created, run by `rq worker --with-scheduler` processes of RQ's default Worker class (a work-horse
forked per job).

This module is also the workers' config module (`rq worker -c bench.baseline_rq`): RQ imports it in
the worker's main process, so requests and the job function are loaded once there instead of in every
forked work-horse, which is RQ's own advice for throughput ("Performance notes" in its worker docs).
It defines no RQ setting (no UPPERCASE names). The job POSTs to the bench provider as the product's
http transport does (baseline_http.deliver); a work-horse lives for one job, so each job opens its
own connection: that is what the default Worker costs.
"""

import sys
from datetime import UTC, datetime

from bench.baseline_http import deliver


def post(url, key, text):
    """Send one message; the job id is the message id too."""
    deliver(url, key, text)


def worker_argv(name: str, redis_url: str) -> list[str]:
    """Every worker runs the scheduler too, as deployments do: one holds its lock, the others stand by."""
    return [
        sys.executable,
        "-m",
        "rq.cli",
        "worker",
        "--with-scheduler",
        "--url",
        redis_url,
        "--name",
        name,
        "-c",
        "bench.baseline_rq",
    ]


def queue(redis_url: str):
    from redis import Redis
    from rq import Queue

    return Queue(connection=Redis.from_url(redis_url))  # the "default" queue


def enqueue(redis_url: str, url: str, items, label: str) -> None:
    """items: [(message id, due epoch)]. One `enqueue_at` each, as RQ's scheduler is meant to be used."""
    target = queue(redis_url)
    for i, (key, due) in enumerate(items):
        target.enqueue_at(datetime.fromtimestamp(due, UTC), post, url, key, f"{label} {i}", job_id=key)


def scheduled(redis_url_or_queue) -> int:
    """Jobs waiting in the scheduled registry (not yet moved to the queue by the scheduler)."""
    target = queue(redis_url_or_queue) if isinstance(redis_url_or_queue, str) else redis_url_or_queue
    return target.scheduled_job_registry.count
