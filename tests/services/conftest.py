import base64
import json
from dataclasses import dataclass
from datetime import datetime

import pytest

from scheduling import broker as broker_state

QUEUE = "celery"  # the broker's default queue, where every hand-over lands


@dataclass(frozen=True)
class Task:
    """A task as it waits in the broker for a worker."""

    name: str
    id: str
    args: list
    eta: datetime | None


class BrokerQueue:
    def __init__(self, client):
        self.client = client

    def tasks(self) -> list[Task]:
        """What waits in the queue, oldest first (Celery pushes at the head and takes from the tail)."""
        return [self._read(raw) for raw in reversed(self.client.lrange(QUEUE, 0, -1))]

    @staticmethod
    def _read(raw: bytes) -> Task:
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        eta = datetime.fromisoformat(headers["eta"]) if headers.get("eta") else None
        return Task(headers["task"], headers["id"], args, eta)


@pytest.fixture
def queue(broker):
    """The broker's queue, empty: nothing waits in it, so a late hand-over is not queued behind others, and
    the broker has kept what it was given (not new, flushed or reconnected), so the pump re-hands nothing.
    Emptied again afterwards: the fleet, which starts later on this broker, gets none of these tasks."""
    broker.client.delete(QUEUE)
    broker_state.keeps_work()
    yield BrokerQueue(broker.client)
    broker.client.delete(QUEUE)
