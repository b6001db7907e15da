"""Liveness and readiness, as a load balancer or an orchestrator asks for them."""

import subprocess
import sys
import time

import requests

from scheduling import services

from ..servers import ROOT, free_port


def test_it_reports_liveness(web):
    response = web.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_it_is_ready_with_database_broker_and_a_fresh_pump(web):
    services.pump_heartbeat(name="host:1")

    response = web.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["database"] == {"ok": True}
    assert response.json()["checks"]["broker"] == {"ok": True}
    assert response.json()["checks"]["pump"]["ok"] is True


def test_it_is_not_ready_without_a_pump(web):
    response = web.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["pump"] == {"ok": False, "error": "no pump has ever run"}


def test_it_is_not_ready_when_the_broker_is_down(web, settings):
    services.pump_heartbeat(name="host:1")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # a closed port

    response = web.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["database"] == {"ok": True}


def test_it_is_not_ready_when_the_database_is_down(service_env):
    port = free_port()
    env = {
        **service_env,
        "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere",
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        response = None
        for _ in range(100):
            try:
                response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        live = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert live.status_code == 200
