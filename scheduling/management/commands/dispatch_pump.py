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
        self.running = True
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
        close_old_connections()
        try:
            services.pump_heartbeat(name=PUMP_NAME)
            moved = services.dispatch_pump_once()
        except Exception:
            # The pump must outlive a database or broker outage; the next tick tries again.
            logger.exception("dispatch pump pass failed")
            return 0
        if moved:
            logger.info("dispatch pump: %d message(s) handed over or recovered", moved)
        return moved

    def stop(self, *_):
        self.running = False
