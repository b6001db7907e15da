"""The plain Celery design, as a baseline: one ETA task per message, sent with `apply_async(eta=scheduledAt)`
when the message is created (and revoked to cancel it), with Celery's defaults for everything else.

Its workers run as `celery -A bench.baseline_celery worker …` with the product's worker count and
concurrency; BENCH_BROKER_URL names their Redis DB (the bench's own). The task POSTs to the bench
provider as the product's http transport does (baseline_http.deliver).
"""

import os
from datetime import UTC, datetime

from celery import Celery

from bench.baseline_http import deliver

TASK = "bench.post"


def make_app(broker_url: str) -> Celery:
    # Never the current app: in the bench process the product's app must stay current. No config: the defaults.
    return Celery("bench_baseline", broker=broker_url, set_as_current=False)


app = make_app(os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"))


@app.task(name=TASK)
def post(url, key, text):
    """Send one message; the task id is the message id too."""
    deliver(url, key, text)


def enqueue(broker_url: str, url: str, items, label: str) -> None:
    """items: [(message id, due epoch)]. One ETA task each, as the plain design does on creation."""
    sender = make_app(broker_url)
    with sender.producer_or_acquire() as producer:
        for i, (key, due) in enumerate(items):
            # What post.apply_async(args, eta=…, task_id=key) sends, without importing the task's app here.
            sender.send_task(
                TASK,
                args=(url, key, f"{label} {i}"),
                task_id=key,
                eta=datetime.fromtimestamp(due, UTC),
                producer=producer,
            )
