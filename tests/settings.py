"""Test settings: the production settings module, fed production-like defaults (DEBUG off).

Set here rather than in conftest.py because pytest-django reads settings before any conftest.
Subprocesses started by the tests (worker, pump) inherit the same environment.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Dispatch timings shrunk so that recovery paths show within seconds.
os.environ.setdefault("DISPATCH_HORIZON", "0.05")  # minutes: 3 s
os.environ.setdefault("DISPATCH_STALE_AFTER_SECONDS", "2")
os.environ.setdefault("DISPATCH_LEASE_SECONDS", "8")
os.environ.setdefault("SEND_TIME_LIMIT_SECONDS", "6")
os.environ.setdefault("DISPATCH_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("DISPATCH_PUMP_INTERVAL_SECONDS", "0.2")
os.environ.setdefault("TRANSPORT_TIMEOUT_SECONDS", "2")
os.environ.setdefault("WEBHOOK_RETRY_SCHEDULE", "0.3,0.3,0.3")
os.environ.setdefault("WEBHOOK_TIMEOUT_SECONDS", "2")
os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE", "1")  # the receivers are on 127.0.0.1
# Off, so that a test making many requests with one key is not refused; tests/api/test_rate_limits.py turns
# it on (and a deployment of the Procfile's processes runs with the default 100/min).
os.environ.setdefault("API_RATE_LIMIT", "0")

from project.settings import *  # noqa: E402,F403

# No collectstatic before tests: serve admin and docs assets without the production manifest.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
