"""The product as a run starts it: its checkout, the settings its processes get from the environment,
its migrations, and its code in the run's own process."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child_env(settings):
    """A product process's environment: this process's, the run's product settings, unbuffered output
    (so that its log is up to date when a run reads it) and the checkout on PYTHONPATH."""
    return {
        **os.environ,
        **settings,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def migrate(env):
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


def setup_django(settings):
    """The product's code in this process too (services, models), with the settings of its processes."""
    os.environ.update(settings)
    import django

    django.setup()
