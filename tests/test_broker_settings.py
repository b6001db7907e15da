"""Where the broker and the Redis store are (BROKER_URL, REDIS_URL, the Sentinel masters' names): a mistake
stops every process at start with one line naming the variable, instead of a worker that cannot connect."""

import os
import subprocess
import sys

import pytest

from .servers import ROOT

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/scheduler"
SENTINELS = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26379"


@pytest.mark.parametrize(
    "configured, refusal",
    [
        (
            {"BROKER_URL": RABBITMQ, "REDIS_URL": ""},
            "BROKER_URL needs REDIS_URL too: Redis is the store for pacing, metrics and ticks.",
        ),
        (
            {"BROKER_URL": "kafka://10.0.0.1:9092"},
            "BROKER_URL must be a redis://, rediss://, sentinel://, amqp:// or amqps:// URL.",
        ),
        ({"REDIS_URL": RABBITMQ}, "REDIS_URL must be a redis://, rediss:// or sentinel:// URL, not amqp://…"),
        ({"REDIS_URL": SENTINELS}, "REDIS_URL names Redis Sentinel: set SENTINEL_MASTER_NAME to its master's name."),
        (
            {"REDIS_URL": "sentinel://10.0.0.1:26379;redis://10.0.0.2:6379", "SENTINEL_MASTER_NAME": "scheduler"},
            "Environment variable REDIS_URL is invalid: not a list of sentinel://host:port addresses separated by ';'",
        ),
        (
            {"BROKER_URL": SENTINELS, "SENTINEL_MASTER_NAME": ""},
            "BROKER_URL names Redis Sentinel: set BROKER_SENTINEL_MASTER_NAME to its master's name.",
        ),
    ],
    ids=["broker without store", "unknown broker", "store not Redis", "no master", "mixed URL", "broker's master"],
)
def test_a_process_refuses_to_start_with_a_broker_or_store_it_cannot_use(configured, refusal):
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:6379/0", "BROKER_URL": "", **configured}

    started = subprocess.run(
        [sys.executable, "-c", "import project.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert started.returncode == 1
    assert started.stderr.strip().splitlines()[-1] == f"django.core.exceptions.ImproperlyConfigured: {refusal}"


def test_a_sentinel_store_and_a_rabbitmq_broker_are_accepted():
    env = {
        **os.environ,
        "REDIS_URL": SENTINELS + "/2",
        "SENTINEL_MASTER_NAME": "scheduler",
        "BROKER_URL": RABBITMQ,
    }

    started = subprocess.run(
        [sys.executable, "-c", "import project.settings as s; print(s.BROKER_KIND, s.CELERY_BROKER_URL)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )

    assert (started.returncode, started.stdout) == (0, f"amqp {RABBITMQ}\n")
