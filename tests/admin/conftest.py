import pytest
from django.test import Client


@pytest.fixture
def web(db):
    """A client on this machine, as a load balancer's health check or a local scraper is."""
    return Client(REMOTE_ADDR="127.0.0.1")
