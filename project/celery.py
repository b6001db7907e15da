import os

from celery import Celery
from celery.app.amqp import AMQP
from kombu import Connection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


class SteadyReconnectConnection(Connection):
    """kombu retries a lost broker connection 2, 4, 6 … up to 30 s apart, so a worker would come back
    up to half a minute after the broker did. Here it tries once a second (where the caller names no
    intervals of its own), so the fleet is sending again within a second or two of the broker's return."""

    def ensure_connection(self, *args, **kwargs):
        if len(args) <= 2:  # (errback, max_retries): the intervals are left to the defaults
            kwargs = {"interval_start": 1, "interval_step": 0, "interval_max": 1, **kwargs}
        return super().ensure_connection(*args, **kwargs)

    def collect(self, socket_timeout=None):
        super().collect(socket_timeout)
        # Celery 5.7.0 closes a lost connection again right after collecting it (the consumer's
        # on_connection_error_after_connected). Its default channel, whose close failed on the dead socket,
        # would then be closed a second time with its transport gone, and the worker exits with
        # "Unrecoverable error: AttributeError: 'NoneType' object has no attribute 'hostname'". The
        # channel is gone with its connection; what it held unacknowledged is re-handed by the pump.
        self._default_channel = None


class SteadyReconnectAMQP(AMQP):
    Connection = SteadyReconnectConnection


app = Celery("project", amqp=SteadyReconnectAMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
# After every reconnect to Redis, the pump is asked to hand over again what the worker held (broker.py says why).
app.steps["consumer"].add("scheduling.broker:WorkerReconnected")
app.autodiscover_tasks()
