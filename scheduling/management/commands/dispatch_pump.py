import logging
import os
import signal
import socket
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from ... import services

logger = logging.getLogger(__name__)
PUMP_NAME = f"{socket.gethostname()}:{os.getpid()}"


class Command(BaseCommand):
    help = "Run the dispatch pump: hand due messages to Celery and recover lost work. Safe to run as several replicas."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one pass and exit.")

    def handle(self, *args, once, **options):
        self.running, self.broker_reachable, self.failed_passes = True, True, 0
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        logger.info("dispatch pump started (every %.2f s)", settings.DISPATCH_PUMP_INTERVAL)
        while self.running:
            started = time.monotonic()
            moved = self.tick()
            if once:
                return
            if moved < settings.DISPATCH_PUMP_BATCH:  # a full batch means more is waiting: no pause
                time.sleep(max(0.0, settings.DISPATCH_PUMP_INTERVAL - (time.monotonic() - started)))

    def tick(self) -> int:
        close_old_connections()  # a connection cut by a database restart is replaced here, not reused
        try:
            services.pump_heartbeat(name=PUMP_NAME)
            result = services.dispatch_pump_once()
        except Exception:
            # The pump must outlive a database or broker outage; the next tick tries again.
            self.note_failure()
            return 0
        if self.failed_passes:
            logger.warning("dispatch pump passes work again, after %d failed one(s)", self.failed_passes)
            self.failed_passes = 0
        self.note_broker(result.broker_reachable)
        if result.moved:
            logger.info("dispatch pump: %d message(s) handed over or recovered", result.moved)
        return result.moved

    def note_failure(self):
        """The first failed pass with its traceback; the rest of an outage, one line a minute."""
        self.failed_passes += 1
        if self.failed_passes == 1:
            logger.exception("dispatch pump pass failed; trying again every tick")
        elif self.failed_passes % max(1, int(60 / settings.DISPATCH_PUMP_INTERVAL)) == 0:
            logger.warning("dispatch pump passes still failing (%d so far)", self.failed_passes)

    def note_broker(self, reachable: bool):
        """Say so once when the broker goes away and once when it is back, not on every tick."""
        if reachable != self.broker_reachable:
            if reachable:
                logger.warning("broker reachable again: handing over what waited for it")
            else:
                logger.warning("broker unreachable: hand-overs wait for it; leases are still recovered")
        self.broker_reachable = reachable

    def stop(self, *_):
        self.running = False
