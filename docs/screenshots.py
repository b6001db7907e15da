"""Takes the README's admin screenshots with headless Chromium (Debian's chromium + chromium-driver).

    apt-get install chromium chromium-driver && .venv/bin/pip install selenium
    .venv/bin/python docs/screenshots.py

It runs the service on a scratch SQLite database with a little demo traffic, logs in as a staff user
and saves docs/dashboard.png and docs/messages.png.
"""

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 3097
SCRATCH = tempfile.mkdtemp(prefix="screenshots-")
os.environ.update(DEBUG="1", VAR_DIR=SCRATCH, DJANGO_SETTINGS_MODULE="project.settings", LOG_FORMAT="plain")
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)
sys.path.insert(0, str(ROOT))


def demo_traffic():
    """A few sessions with messages in every state, written through the services."""
    from django.contrib.auth.models import User

    from scheduling import services
    from scheduling.models import ScheduledMessage

    User.objects.create_superuser("ops", password="screenshots-only")
    now = datetime.now(UTC)
    for name, count in (("Acme shop", 14), ("Clinic reminders", 9), ("Newsletter", 5)):
        session = services.session_create(name=name).session
        for i in range(count):
            message = services.message_schedule(
                session=session,
                scheduled_at=now + timedelta(minutes=7 * i + 3),
                to="919988066776",
                text=f"Reminder {i}",
            )
            if i % 4 == 0:  # sent a while ago, a few milliseconds late
                ScheduledMessage.objects.filter(pk=message.pk).update(
                    status="sent",
                    scheduled_at=now - timedelta(hours=i + 1),
                    sent_at=now - timedelta(hours=i + 1) + timedelta(milliseconds=40 + i),
                    provider_message_id=f"wamid.{i:04d}",
                    attempts=1,
                )
            elif i == 1:
                services.message_cancel(message=message)
    late = ScheduledMessage.objects.filter(session__name="Clinic reminders", status="pending").first()
    ScheduledMessage.objects.filter(pk=late.pk).update(due_at=now - timedelta(minutes=4))
    failed = ScheduledMessage.objects.filter(session__name="Newsletter", status="pending").first()
    ScheduledMessage.objects.filter(pk=failed.pk).update(
        status="failed", last_error="Provider refused the message with HTTP 400"
    )
    services.session_pause(session=late.session)
    services.pump_heartbeat(name="pump-1")


def main():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    demo_traffic()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{PORT}"], cwd=ROOT, env=os.environ
    )
    try:
        time.sleep(3)
        shoot()
    finally:
        server.terminate()


def shoot():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1600,800",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        base = f"http://127.0.0.1:{PORT}"
        browser.get(f"{base}/admin/login/")
        browser.find_element(By.NAME, "username").send_keys("ops")
        browser.find_element(By.NAME, "password").send_keys("screenshots-only")
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
        browser.get(f"{base}/admin/dashboard/")
        browser.save_screenshot(str(ROOT / "docs" / "dashboard.png"))
        browser.get(f"{base}/admin/scheduling/scheduledmessage/?o=-6")
        browser.save_screenshot(str(ROOT / "docs" / "messages.png"))
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
