"""The benchmark's own tiny Celery app: no Django, no database, one task that does (almost) nothing.

Its worker runs as `celery -A bench.noop_app worker …`, configured from the environment:
BENCH_BROKER_URL (its own Redis DB) and BENCH_CELERY_CONFIG, a JSON object of Celery settings: the
product's CELERY_* settings, to measure raw no-op throughput with the same worker setup as the product.
(The plain-ETA baseline has its own app, baseline_celery.py, whose task sends like the product.)
"""

import json
import os
import time

import redis
from celery import Celery

TIMES_KEY = "bench:noop:times"


def make_app(broker_url: str, config: dict) -> Celery:
    # Never the current app: in the bench process the product's app must stay current.
    app = Celery("bench_noop", broker=broker_url, set_as_current=False)
    app.conf.update(config)
    return app


app = make_app(
    os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
    json.loads(os.environ.get("BENCH_CELERY_CONFIG", "{}")),
)
_redis = None


@app.task(name="bench.noop_timed", ignore_result=True)
def noop_timed():
    """Record this task's start and finish so the bench can time a whole batch."""
    global _redis
    started = time.time()
    if _redis is None:  # one client per pool process, made after the fork
        _redis = redis.Redis.from_url(app.conf.broker_url)
    _redis.rpush(TIMES_KEY, f"{started:.6f} {time.time():.6f}")
