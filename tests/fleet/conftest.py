"""The shared fleet: one Celery worker and one pump on the test database, for the rest of the session
(tests/conftest.py runs every test that uses it after all the others)."""

from types import SimpleNamespace

import pytest

from .. import support


@pytest.fixture(scope="session")
def fleet(service_env, broker):
    """One worker and one pump, as the Procfile runs them; tests may kill and restart them."""
    running = SimpleNamespace(worker=support.worker(service_env, "w1").start(), pump=support.pump(service_env).start())
    yield running
    running.worker.stop()
    running.pump.stop()


@pytest.fixture
def dispatch(transactional_db, fleet, provider):
    """A clean provider record; the test's writes are committed so that the worker sees them."""
    provider.reset()
    yield fleet
    if fleet.worker.popen.poll() is not None:
        fleet.worker.start()
