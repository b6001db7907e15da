"""Health, readiness and Prometheus metrics for the people who run the service."""

import hmac
import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from kombu import Connection
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from . import broker, metrics, selectors


@require_GET
def healthz(request):
    """Liveness: the process answers. It checks nothing else, so a database outage never restarts web."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    checks = {"database": check_database(), "broker": check_broker(), "pump": check_pump()}
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__}


def check_broker() -> dict:
    try:
        with Connection(
            settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS, connect_timeout=2
        ) as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__}


def check_pump() -> dict:
    try:
        age = selectors.pump_heartbeat_age()
    except Exception as exc:
        return {"ok": False, "error": exc.__class__.__name__}
    if age is None:
        return {"ok": False, "error": "no pump has ever run"}
    return {"ok": age <= settings.PUMP_HEARTBEAT_MAX_AGE, "age_seconds": round(age, 3)}


def metrics_view(request):
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_NETWORKS):
        return JsonResponse(
            {
                "success": False,
                "error": "Metrics are closed: set METRICS_TOKEN (and scrape with "
                "Authorization: Bearer) or METRICS_ALLOWED_NETWORKS",
            },
            status=403,
        )
    if not metrics_allowed(request):
        return JsonResponse({"success": False, "error": "Metrics are not open to this client"}, status=403)
    registry = CollectorRegistry()
    registry.register(FleetCollector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4; charset=utf-8")


def metrics_allowed(request) -> bool:
    """A bearer token (METRICS_TOKEN) or an address inside METRICS_ALLOWED_NETWORKS."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if settings.METRICS_TOKEN and scheme.lower() == "bearer" and hmac.compare_digest(token, settings.METRICS_TOKEN):
        return True
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(network) for network in settings.METRICS_ALLOWED_NETWORKS)


class FleetCollector:
    """Database figures (the truth), the fleet's event counters from Redis, and the broker's queue."""

    def collect(self):
        yield from self.database_figures()
        yield from self.event_counters(metrics.read_all())
        backlog = broker.backlog()
        if backlog is not None:
            yield GaugeMetricFamily(
                "broker_queue_depth", "Tasks waiting in the broker's queue, ready to run.", value=backlog
            )

    def database_figures(self):
        by_status = GaugeMetricFamily("scheduled_messages", "Scheduled messages by status.", labels=["status"])
        for status, count in selectors.message_counts_by_status().items():
            by_status.add_metric([status], count)
        yield by_status
        now = timezone.now()
        oldest_due = selectors.oldest_due_pending(now)
        yield GaugeMetricFamily(
            "dispatch_lag_seconds",
            "How long the most overdue pending message has waited past its due time.",
            value=(now - oldest_due).total_seconds() if oldest_due else 0.0,
        )
        age = selectors.pump_heartbeat_age()
        yield GaugeMetricFamily(
            "dispatch_pump_heartbeat_age_seconds",
            "Seconds since a pump last ran.",
            value=age if age is not None else float("inf"),
        )
        yield GaugeMetricFamily(
            "scheduled_messages_due_next_hour",
            "Pending messages due within the hour.",
            value=selectors.pending_due_between(now, now + timedelta(hours=1)),
        )
        yield GaugeMetricFamily(
            "scheduled_messages_paced",
            "Pending messages deferred to a later pacing slot (a session's or a transport's send rate).",
            value=selectors.paced_waiting(now),
        )

    def event_counters(self, figures):
        if not figures:
            return
        sends = CounterMetricFamily(
            "message_sends",
            "Send attempts by transport and outcome (sent, retry, failed).",
            labels=["transport", "outcome"],
        )
        for key, count in figures["sends"].items():
            sends.add_metric(key.split("|", 1), count)
        yield sends
        webhooks = CounterMetricFamily("webhook_attempts", "Webhook delivery attempts by outcome.", labels=["outcome"])
        for outcome, count in figures["webhooks"].items():
            webhooks.add_metric([outcome], count)
        yield webhooks
        yield HistogramMetricFamily(
            "message_lateness_seconds",
            "Seconds from scheduledAt to the provider accepting the message.",
            buckets=cumulative(figures["lateness"]),
            sum_value=figures["lateness_sum"],
        )
        yield HistogramMetricFamily(
            "message_pacing_delay_seconds",
            "How long each message deferred by pacing was made to wait for its slot.",
            buckets=cumulative(figures["pacing"]),
            sum_value=figures["pacing_sum"],
        )


def cumulative(per_bucket: dict) -> list:
    running, buckets = 0.0, []
    for bound in [*map(str, metrics.LATENESS_BUCKETS), "+Inf"]:
        running += per_bucket.get(bound, 0.0)
        buckets.append((bound, running))
    return buckets
