"""Dispatch benchmark: memory with far-future messages, lateness, burst drain, all against real services.

    .venv/bin/python bench/dispatch.py [--pending 100000] [--rate 100] [--duration 30] [--burst 10000]
                                       [--workers 2] [--out bench/results] [--baselines celery,rq] [--no-charts]
                                       [--rabbitmq amqp://guest:guest@127.0.0.1:5672/bench]

One run, on one machine, with real PostgreSQL (its own database), real Redis (its own DB indexes),
real `celery -A project worker` and `manage.py dispatch_pump` processes, and a local provider
(bench/provider.py) that records when each message arrives. Phases, in order:

1. pending:  N far-future rows (a day ahead): worker RSS, pump RSS, Redis, PostgreSQL table size.
2. lateness: rate x duration messages through `services.message_schedule`, due one after another.
3. burst:    --burst messages due at the same instant: drain rate.
   (with --rabbitmq: phases 2 and 3 again, RabbitMQ the broker and Redis the store)
4. no-op:    the same number of worker processes, the product's Celery settings, --burst no-op tasks.
5. celery:   baseline, the plain design (one apply_async(eta=scheduledAt) per message): phases 1-3 again.
6. rq:       baseline, RQ's scheduler (queue.enqueue_at, rq worker --with-scheduler): phases 1-3 again.

Prints a table and writes <out>/dispatch.json, then charts (charts.py) next to it; exits 1 if any of the
product's messages was lost or sent twice (a baseline's losses are reported, not failed).
See bench/README.md for what each figure means.
"""

import importlib.util
import json
import math
import multiprocessing
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import costs
from fleet import Child, Provider, celery_worker, dispatch_pump, logs_dir, start_all
from options import add_result_options, add_scratch_options, runner_parser
from procfs import MB, tree_memory
from product import ROOT, child_env, setup_django
from runs import machine_facts, run_exclusively, run_record
from scratch import fresh_database, release_scratch, scratch_redis
from stats import percentile

sys.path.insert(0, str(ROOT))

TO = "15550001234"
TARGETS = {
    "pending_worker_rss_growth_mb": 50,
    "pending_redis_messages": 0,
    "lateness_p50_ms": 100,
    "lateness_p99_ms": 500,
    "drain_to_noop_ratio": 0.5,
}


def parse_args(argv=None):
    parser = options_parser()
    args = parser.parse_args(argv)
    if args.baseline_pending is None:
        args.baseline_pending = min(args.pending, 20_000)
    args.baselines = [] if args.skip_baseline else [name.strip() for name in args.baselines.split(",") if name.strip()]
    unknown = set(args.baselines) - {"celery", "rq"}
    if unknown:
        parser.error(f"unknown baseline(s) {', '.join(sorted(unknown))}: choose from celery, rq")
    if "rq" in args.baselines and importlib.util.find_spec("rq") is None:
        parser.error("the rq baseline needs `pip install -r requirements-bench.txt` (or --baselines celery)")
    return args


def options_parser():
    parser = runner_parser(__doc__)
    parser.add_argument("--pending", type=int, default=100_000, help="far-future messages (phase 1)")
    parser.add_argument("--pending-settle", type=float, default=10.0, help="seconds the pump runs over them")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second due (phase 2)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of steady rate (phase 2)")
    parser.add_argument(
        "--lead", type=float, default=15.0, help="the first steady message is due this long after creation starts"
    )
    parser.add_argument("--burst", type=int, default=10_000, help="messages due at the same instant (phases 3 and 4)")
    parser.add_argument(
        "--burst-lead", type=float, default=60.0, help="the burst is due this long after creation starts"
    )
    parser.add_argument(
        "--burst-create",
        choices=["pump", "service"],
        default="pump",
        help="pump: rows as stored for far-future messages, handed over by the pump (fast); "
        "service: message_schedule, handed over on commit",
    )
    parser.add_argument("--creators", type=int, default=2, help="processes calling message_schedule")
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes")
    parser.add_argument(
        "--concurrency", type=int, default=8, help="pool processes per worker (the Procfile's WORKER_CONCURRENCY)"
    )
    parser.add_argument(
        "--provider-latency-ms", type=float, default=0.0, help="the provider answers each send this much later"
    )
    parser.add_argument(
        "--provider-rate-cap", type=int, default=0, help="the provider answers 429 beyond this many sends a second"
    )
    parser.add_argument(
        "--baselines",
        default="celery,rq",
        help="comma-separated baselines to run: celery (phase 5), rq (phase 6); empty for none",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="skip every baseline (same as --baselines '')")
    parser.add_argument(
        "--baseline-pending",
        type=int,
        default=None,
        help="far-future messages per baseline (default: --pending, at most 20000: 100k plain-ETA "
        "tasks take ~4 min to enqueue and reserve)",
    )
    parser.add_argument(
        "--baseline-pool",
        default="prefork",
        help="the plain-Celery baseline's worker pool: prefork (--concurrency processes), threads or gevent",
    )
    parser.add_argument(
        "--baseline-concurrency",
        type=int,
        default=None,
        help="the plain-Celery baseline's concurrency per worker (default: --concurrency)",
    )
    parser.add_argument(
        "--baseline-timeout", type=float, default=300.0, help="cap on waiting for the plain-ETA workers to reserve them"
    )
    parser.add_argument(
        "--rabbitmq",
        default="",
        help="also run phases 2 and 3 with RabbitMQ as the broker: the AMQP URL of a virtual host of the run's own "
        "(deleted and made again with rabbitmqctl, so emptied)",
    )
    parser.add_argument("--no-charts", action="store_true", help="do not draw the PNG charts (charts.py)")
    parser.add_argument("--horizon", type=float, default=5.0, help="DISPATCH_HORIZON, minutes")
    add_scratch_options(
        parser, db_name="bench_scheduler", redis_db=14, redis_db_help="the product's broker DB (flushed)"
    )
    parser.add_argument("--bench-redis-db", type=int, default=13, help="the bench's own Celery apps' DB (flushed)")
    parser.add_argument("--rq-redis-db", type=int, default=12, help="the RQ baseline's DB (flushed)")
    add_result_options(parser, out=ROOT / "bench" / "results")
    return parser


# --- Measuring ------------------------------------------------------------------------------------


def fleet_memory(fleet):
    return {w.name: tree_memory(w.pid) for w in fleet}


def redis_state(client):
    """Server-wide memory, and every message this DB holds: queued (lists) or reserved (`unacked`)."""
    queued = {}
    for key in client.scan_iter(count=1000):
        if client.type(key) == b"list":
            queued[key.decode(errors="replace")] = client.llen(key)
    unacked = client.hlen("unacked")
    return {
        "used_memory_mb": client.info("memory")["used_memory"] / MB,
        "db_keys_memory_mb": sum(client.memory_usage(key, samples=0) or 0 for key in client.scan_iter(count=1000)) / MB,
        "celery_queue_len": client.llen("celery"),
        "queued": sum(queued.values()),
        "unacked": unacked,
        "messages_held": sum(queued.values()) + unacked,
        "dbsize": client.dbsize(),
    }


def workers_growth(before, after):
    """Each worker's memory growth between two snapshots, the largest and the sum of their trees."""
    keys = ["main_rss_mb", "tree_rss_mb", "tree_pss_mb"]
    growth = {
        name: {key: after["workers"][name][key] - memory[key] for key in keys}
        for name, memory in before["workers"].items()
    }
    return {
        "worker_growth_mb": growth,
        "max_worker_tree_rss_growth_mb": max(g["tree_rss_mb"] for g in growth.values()),
        "workers_tree_rss_growth_total_mb": sum(g["tree_rss_mb"] for g in growth.values()),
    }


def lateness_summary(lateness_s):
    values = sorted(lateness_s)
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    return {
        "min_ms": ms(values[0] if values else None),
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(values[-1] if values else None),
        "early": sum(1 for v in values if v < 0),
    }


def arrivals_at(provider, mark, due_by_id, last_due):
    """Wait for a phase's messages at the provider (Provider.wait_for), then their arrival times by id."""
    provider.wait_for(mark, len(due_by_id), last_due=last_due)
    return provider.deliveries(mark, set(due_by_id))


def delivery_report(due_by_id, arrivals):
    lost = [key for key in due_by_id if key not in arrivals]
    duplicated = {key: len(times) for key, times in arrivals.items() if len(times) > 1}
    lateness = [min(times) - due_by_id[key] for key, times in arrivals.items()]
    return {
        "expected": len(due_by_id),
        "sent": len(arrivals),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "lost_ids": lost[:20],
        "duplicated_ids": list(duplicated)[:20],
        **lateness_summary(lateness),
    }


def lateness_samples_ms(due_by_id, arrivals):
    """Every first arrival minus its due time, sorted, in ms to 0.1: what the charts draw (compact in the JSON)."""
    return sorted(round((min(times) - due_by_id[key]) * 1000, 1) for key, times in arrivals.items())


def drain_figures(arrivals, due, count):
    """drain = last arrival - the burst's due time; drain rate = messages / drain."""
    last = max((t for times in arrivals.values() for t in times), default=None)
    drain_s = (last - due) if last else None
    return {"drain_s": drain_s, "drain_per_s": count / drain_s if drain_s else None}


def first_time_before(due, ready):
    """When ready() first held, polled every 0.2 s until `due`; None if it never did."""
    while time.time() < due:
        if ready():
            return time.time()
        time.sleep(0.2)
    return None


def measured_before(due, measure):
    """measure() 2 s before `due` (what is held with a whole burst in place); None if that moment has passed."""
    if time.time() >= due - 2:
        return None
    time.sleep(max(0.0, due - 2 - time.time()))
    return measure()


def table_size(model):
    """PostgreSQL's on-disk size of a model's table: heap, indexes (each), and the total with TOAST and maps."""
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s::regclass), pg_relation_size(%s::regclass), "
            "pg_indexes_size(%s::regclass)",
            [table] * 3,
        )
        total, heap, indexes = cursor.fetchone()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass ORDER BY 1",
            [table],
        )
        each = dict(cursor.fetchall())
    return {
        "table": table,
        "total_mb": total / MB,
        "heap_mb": heap / MB,
        "indexes_mb": indexes / MB,
        "index_mb": {name: size / MB for name, size in each.items()},
    }


# --- Set-up ------------------------------------------------------------------------------------


def product_settings(args, provider_url):
    """The settings the product runs with (the production defaults otherwise): its processes' and this one's."""
    return {
        "DJANGO_SETTINGS_MODULE": args.settings,
        "SECRET_KEY": "bench",
        "DATABASE_URL": f"{args.pg}/{args.db_name}",
        "REDIS_URL": f"{args.redis}/{args.redis_db}",
        "TRANSPORT_URL": provider_url,
        "DISPATCH_HORIZON": str(args.horizon),
    }


def noop_env(args, celery_config):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    return {
        **env,
        "BENCH_BROKER_URL": f"{args.redis}/{args.bench_redis_db}",
        "BENCH_CELERY_CONFIG": json.dumps(celery_config),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
    }


def set_up_product(args, provider_url, results):
    """The scratch database, migrated, and the product's code in this process; returns its processes' environment."""
    settings = product_settings(args, provider_url)
    env = child_env(settings)
    fresh_database(args.pg, args.db_name, env)
    setup_django(settings)
    results.update(machine_and_versions(args))
    results["dispatch_settings"] = dispatch_settings()
    results["child_env"] = settings
    return env


def dispatch_settings():
    from django.conf import settings

    names = [name for name in dir(settings) if name.startswith("DISPATCH_")] + ["CELERY_WORKER_ETA_TASK_LIMIT"]
    value = lambda v: v.total_seconds() if isinstance(v, timedelta) else v  # noqa: E731
    return {name: value(getattr(settings, name)) for name in names}


def product_celery_config():
    """The product's CELERY_* settings as Celery names, broker aside: the no-op app's worker setup."""
    from django.conf import settings

    config = {
        name[len("CELERY_") :].lower(): getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")
    }
    config.pop("broker_url", None)
    return config


def machine_and_versions(args):
    import celery
    import django
    import kombu
    import psycopg
    import redis
    import requests

    facts = machine_facts(args.redis)
    facts["versions"].update(
        {
            "django": django.get_version(),
            "celery": celery.__version__,
            "kombu": kombu.__version__,
            "redis_py": redis.__version__,
            "psycopg": psycopg.__version__,
            "requests": requests.__version__,
            **{name: installed_version(name) for name in ("rq", "matplotlib")},
        }
    )
    return facts


def installed_version(name):
    """The baselines' and charts' packages come from requirements-bench.txt and may be absent."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def bench_sessions():
    from scheduling import services

    return {name: services.session_create(name=f"bench-{name}").session for name in ("pending", "lateness", "burst")}


def start_creators(processes):
    """The processes that call message_schedule (spawned, Django set up), started before anything is timed."""
    pool = multiprocessing.get_context("spawn").Pool(processes, initializer=_creator_setup)
    Child.pools.append(pool)
    pool.map(abs, range(processes * 4))
    return pool, processes


def start_fleet(args, env, log_dir):
    print(f"starting {args.workers} worker(s) and the pump", flush=True)
    fleet = [celery_worker(f"w{i + 1}", "project", env, log_dir, args.concurrency) for i in range(args.workers)]
    pump = dispatch_pump(env, log_dir)
    start_all([*fleet, pump])
    return fleet, pump


# --- Phase 1: far-future messages cost a row, not memory ------------------------------------


def snapshot(workers, pump, broker):
    return {"workers": fleet_memory(workers), "pump": tree_memory(pump.pid), "redis": redis_state(broker)}


def phase_pending(args, fleet, pump, broker, session):
    from scheduling.models import ScheduledMessage

    time.sleep(3)  # let freshly started processes settle
    before = snapshot(fleet, pump, broker)
    table_before = table_size(ScheduledMessage)
    insert_s = insert_far_future(session, args.pending)
    time.sleep(args.pending_settle)
    after = snapshot(fleet, pump, broker)
    table_after = table_size(ScheduledMessage)  # the rows are what the product holds instead of memory
    handed_over = ScheduledMessage.objects.filter(session=session).exclude(handed_over_at=None).count()
    delete_s = delete_rows(session)
    return {
        "messages": args.pending,
        "insert_s": insert_s,
        "insert_per_s": args.pending / insert_s,
        "delete_s": delete_s,
        "pump_ran_s": args.pending_settle,
        "handed_over": handed_over,
        "before": before,
        "after": after,
        **workers_growth(before, after),
        "postgres_before": table_before,
        "postgres_after": table_after,
        "postgres_growth_mb": table_after["total_mb"] - table_before["total_mb"],
        "postgres_bytes_per_message": (table_after["total_mb"] - table_before["total_mb"]) * MB / args.pending,
        "pump_rss_growth_mb": after["pump"]["main_rss_mb"] - before["pump"]["main_rss_mb"],
        "redis_used_memory_growth_mb": after["redis"]["used_memory_mb"] - before["redis"]["used_memory_mb"],
        "redis_db_keys_memory_mb": after["redis"]["db_keys_memory_mb"],
        "redis_messages_held": after["redis"]["messages_held"],
    }


def insert_far_future(session, count):
    """`count` rows due a day ahead, 1 ms apart, in bulk_create batches of 5000; returns the seconds it took."""
    from scheduling.models import ScheduledMessage

    first_due = datetime.now(UTC) + timedelta(days=1)
    started = time.perf_counter()
    for offset in range(0, count, 5000):
        batch = []
        for i in range(offset, min(offset + 5000, count)):
            due = first_due + timedelta(milliseconds=i)
            # The row message_schedule writes for a far-future time (its history row aside).
            batch.append(
                ScheduledMessage(
                    session=session,
                    to=TO,
                    text=f"pending {i}",
                    scheduled_at=due,
                    due_at=due,
                    handed_over_at=None,
                    task_id="",
                )
            )
        ScheduledMessage.objects.bulk_create(batch)
    return time.perf_counter() - started


def delete_rows(session):
    """The phase's rows deleted, the table vacuumed and analysed; returns the seconds it took."""
    from django.db import connection

    from scheduling.models import ScheduledMessage

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ScheduledMessage._meta.db_table} WHERE session_id = %s", [session.pk])
        cursor.execute(f"VACUUM ANALYZE {ScheduledMessage._meta.db_table}")
    return time.perf_counter() - started


# --- Phases 2 and 3: messages through the real service ------------------------------------------


def _creator_setup():
    import django

    django.setup()


def _schedule_share(job):
    """In a creator process: message_schedule for each (index, due), as the API does."""
    from scheduling import services
    from scheduling.models import Session

    session_id, label, items = job
    session = Session.objects.get(pk=session_id)
    created = []
    for i, due in items:
        message = services.message_schedule(
            session=session, scheduled_at=datetime.fromtimestamp(due, UTC), to=TO, text=f"{label} {i}"
        )
        created.append((message.id, message.scheduled_at.timestamp()))
    return created


def schedule_via_service(creators, session, dues, label):
    """{message id: scheduledAt epoch}; the creator processes share the dues in order, round robin."""
    pool, processes = creators
    shares = [(session.pk, label, list(enumerate(dues))[k::processes]) for k in range(processes)]
    return dict(pair for share in pool.map(_schedule_share, shares) for pair in share)


def insert_as_stored(session, dues, label):
    """Message rows as message_schedule stores one due beyond the horizon (its "scheduled" history row
    aside), so that the pump hands them over: how a campaign scheduled days ahead reaches the workers."""
    from scheduling.models import ScheduledMessage

    rows = []
    for i, due in enumerate(dues):
        at = datetime.fromtimestamp(due, UTC)
        rows.append(
            ScheduledMessage(
                session=session, to=TO, text=f"{label} {i}", scheduled_at=at, due_at=at, handed_over_at=None, task_id=""
            )
        )
    ScheduledMessage.objects.bulk_create(rows, batch_size=5000)
    return {row.id: row.scheduled_at.timestamp() for row in rows}


def rehanded(session):
    """Hand-overs the pump took for lost (due more than DISPATCH_STALE_AFTER ago, still pending)."""
    from scheduling.models import MessageEvent

    return MessageEvent.objects.filter(message__session=session, actor="pump", detail__contains="presumed lost").count()


def db_sessions_opened():
    """pg_stat_database.sessions of the bench database: connections ever opened to it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def settled_statuses(session, timeout=30.0):
    from scheduling.models import MessageStatus, ScheduledMessage

    deadline = time.time() + timeout
    while True:
        counts = Counter(ScheduledMessage.objects.filter(session=session).values_list("status", flat=True))
        if not (counts[MessageStatus.PENDING] or counts[MessageStatus.SENDING]) or time.time() > deadline:
            return dict(counts)
        time.sleep(0.5)


def phase_lateness(args, provider, session, creators, meter):
    count = round(args.rate * args.duration)
    before = meter(settle="before")  # the pending phase's deletes are not this phase's
    mark, sessions = provider.count(), db_sessions_opened()
    started = time.time()
    t0 = started + args.lead
    due_by_id = schedule_via_service(creators, session, [t0 + i / args.rate for i in range(count)], "steady")
    created = time.time()
    arrivals = arrivals_at(provider, mark, due_by_id, last_due=max(due_by_id.values()))
    return {
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "created": count,
        "create_s": created - started,
        "create_per_s": count / (created - started),
        "creators": args.creators,
        "lead_s": args.lead,
        "created_before_first_due": created <= t0,
        **delivery_report(due_by_id, arrivals),
        "statuses": settled_statuses(session),
        "rehanded_as_lost": rehanded(session),
        "db_connections_opened": db_sessions_opened() - sessions,
        "costs": costs.per_message(before, meter(settle="after"), len(arrivals)),
        "samples_ms": lateness_samples_ms(due_by_id, arrivals),
    }


def phase_burst(args, provider, session, fleet, broker, creators, queued, meter):
    """`queued()`: tasks waiting in the broker's queue (none once the workers hold the whole burst)."""
    from scheduling.models import ScheduledMessage

    mark = provider.count()
    started = time.time()
    due = math.ceil(started + args.burst_lead)
    if args.burst_create == "service":
        due_by_id = schedule_via_service(creators, session, [due] * args.burst, "burst")
    else:
        due_by_id = insert_as_stored(session, [due] * args.burst, "burst")
    created = time.time()

    def all_handed_over_and_reserved():
        return not ScheduledMessage.objects.filter(session=session, handed_over_at=None).count() and queued() == 0

    handed_over_at = first_time_before(due, all_handed_over_and_reserved)
    # what the workers hold with the whole burst reserved
    held = measured_before(due, lambda: {"workers": fleet_memory(fleet), "redis": redis_state(broker)})
    sessions, before = db_sessions_opened(), meter()
    arrivals = arrivals_at(provider, mark, due_by_id, last_due=due)
    statuses = settled_statuses(session)
    return {
        "messages": args.burst,
        "created_by": args.burst_create,
        "lead_s": due - started,
        "create_s": created - started,
        "create_per_s": args.burst / (created - started),
        "handed_over_and_reserved_s": None if handed_over_at is None else handed_over_at - started,
        "handed_over_before_due": handed_over_at is not None,
        **drain_figures(arrivals, due, args.burst),
        **delivery_report(due_by_id, arrivals),
        "held_before_due": held,
        "statuses": statuses,
        "rehanded_as_lost": rehanded(session),
        "db_connections_opened": db_sessions_opened() - sessions,
        "costs": costs.per_message(before, meter(settle="after"), len(arrivals)),  # Redis's: with this run's polling
        "samples_ms": lateness_samples_ms(due_by_id, arrivals),
    }


# --- Phases 2 and 3 again, RabbitMQ the broker ------------------------------------------------------


def phase_on_rabbitmq(args, env, log_dir, provider, store):
    """The same steady rate and burst, with BROKER_URL the run's RabbitMQ virtual host (emptied) and Redis
    the store: a fresh fleet and fresh creator processes, whose hand-overs go to RabbitMQ."""
    from scheduling import services

    empty_virtual_host(args.rabbitmq)
    os.environ["BROKER_URL"] = args.rabbitmq  # the creator processes inherit it
    try:
        for pool in Child.pools:
            pool.terminate()
        creators = start_creators(args.creators)
        fleet, pump = start_fleet(args, {**env, "BROKER_URL": args.rabbitmq}, log_dir)
        meter = lambda settle="": costs.snapshot(store, fleet, pump, settle=settle)  # noqa: E731
        session = lambda name: services.session_create(name=f"bench-rabbitmq-{name}").session  # noqa: E731
        results = {"url": args.rabbitmq.split("@")[-1]}
        print(f"  rabbitmq: {args.rate:g}/s for {args.duration:g} s", flush=True)
        results["lateness"] = phase_lateness(args, provider, session("lateness"), creators, meter)
        print(f"  rabbitmq: burst of {args.burst}", flush=True)
        queued = lambda: rabbitmq_queued(args.rabbitmq)  # noqa: E731
        results["burst"] = phase_burst(args, provider, session("burst"), fleet, store, creators, queued, meter)
        results["fleet_after"] = fleet_memory(fleet)
        for child in [pump, *fleet]:
            child.stop()
        return results
    finally:
        os.environ.pop("BROKER_URL", None)


def empty_virtual_host(url):
    import subprocess
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    vhost, user = unquote(parts.path[1:]) or "/", unquote(parts.username or "guest")
    ctl = lambda *argv, check=True: subprocess.run(["rabbitmqctl", "--quiet", *argv], check=check, capture_output=True)  # noqa: E731
    ctl("delete_vhost", vhost, check=False)
    ctl("add_vhost", vhost)
    ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def rabbitmq_queued(url):
    """Tasks ready in RabbitMQ's default queue (delayed ones wait in its delayed-delivery queues)."""
    from kombu import Connection

    with Connection(url) as connection, connection.channel() as channel:
        try:
            return channel.queue_declare(queue="celery", passive=True).message_count
        except connection.channel_errors:
            return 0


# --- Phase 4: raw Celery no-op throughput, same worker setup ------------------------------------


def phase_noop(args, log_dir, bench_broker, celery_config):
    from bench import noop_app

    bench_broker.flushdb()
    app = noop_app.make_app(f"{args.redis}/{args.bench_redis_db}", celery_config)
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(args.burst):
            app.send_task("bench.noop_timed", queue="bench.staging", producer=producer)
    enqueue_s = time.perf_counter() - started
    times = noop_times(args, log_dir, bench_broker, celery_config)
    run_s = max(t[1] for t in times) - min(t[0] for t in times) if len(times) > 1 else None
    first = min((t[0] for t in times), default=0.0)
    return {
        "tasks": args.burst,
        "done": len(times),
        "enqueue_s": enqueue_s,
        "run_s": run_s,
        "noop_per_s": len(times) / run_s if run_s else None,
        "celery_config": celery_config,
        "samples_ms": sorted(round((t[1] - first) * 1000, 1) for t in times),  # finishes since the first start
    }


def noop_times(args, log_dir, bench_broker, celery_config):
    """Start the no-op workers, let the queued batch appear at once, and return each task's (start, finish)."""
    from bench import noop_app

    workers = [
        celery_worker(f"noop{i + 1}", "bench.noop_app", noop_env(args, celery_config), log_dir, args.concurrency)
        for i in range(args.workers)
    ]
    for worker in workers:  # they consume "bench.run", empty until every task is there
        worker.argv += ["--queues", "bench.run"]
    try:
        start_all(workers)
        time.sleep(2)
        bench_broker.rename("bench.staging", "bench.run")  # the whole batch appears at once
        deadline = time.time() + 60 + args.burst / 20
        while bench_broker.llen(noop_app.TIMES_KEY) < args.burst and time.time() < deadline:
            time.sleep(0.1)
        return [tuple(map(float, item.split())) for item in bench_broker.lrange(noop_app.TIMES_KEY, 0, -1)]
    finally:
        for worker in workers:
            worker.stop()


# --- Phases 5 and 6: the baselines, measured as the product is ------------------------------------


@dataclass
class Baseline:
    """What differs between two baselines: their workers, how a message is scheduled, and how to tell
    that Redis or the workers hold `count` of them ready. The phases below are shared, so both are
    measured the same way, with the same provider, due times and lead times as the product."""

    name: str
    fleet: Callable[[], list]  # its workers as Child objects, not started
    enqueue: Callable[[list, str], None]  # ([(message id, due epoch)], label)
    ready: Callable[[int], bool]  # (count)
    client: object  # a redis.Redis on its DB, flushed between phases


def celery_baseline(args, log_dir, provider):
    """The plain design: the product's worker setup (--workers x --concurrency pool processes, or
    --baseline-pool threads/gevent with --baseline-concurrency), Celery's defaults otherwise (prefetch
    4, early ack, …), on the bench's own Redis DB."""
    import redis

    from bench import baseline_celery

    url = f"{args.redis}/{args.bench_redis_db}"
    client = redis.Redis.from_url(url)

    def fleet():
        concurrency = args.baseline_concurrency or args.concurrency
        return [
            celery_worker(
                f"celery{i + 1}", "bench.baseline_celery", noop_env(args, {}), log_dir, concurrency, args.baseline_pool
            )
            for i in range(args.workers)
        ]

    def ready(count):  # every ETA task reserved by a worker, none left in the queue
        state = redis_state(client)
        return state["queued"] == 0 and state["unacked"] >= count

    return Baseline(
        "celery", fleet, lambda items, label: baseline_celery.enqueue(url, provider.url, items, label), ready, client
    )


def rq_baseline(args, log_dir, provider):
    """RQ's scheduler: as many `rq worker --with-scheduler` processes (default Worker, one job at a time
    each) as the product has pool processes, so both run the same number of sends at once."""
    from bench import baseline_rq

    url = f"{args.redis}/{args.rq_redis_db}"
    queue = baseline_rq.queue(url)
    env = {**noop_env(args, {}), "PYTHONPATH": str(ROOT)}

    def fleet():
        return [
            Child(f"rq{i + 1}", baseline_rq.worker_argv(f"rq{i + 1}", url), env, log_dir, ready="Listening on")
            for i in range(args.workers * args.concurrency)
        ]

    return Baseline(
        "rq",
        fleet,
        lambda items, label: baseline_rq.enqueue(url, provider.url, items, label),
        lambda count: baseline_rq.scheduled(queue) >= count,
        queue.connection,
    )


def baseline_pending(args, base):
    """--baseline-pending messages a day ahead: how fast they are scheduled, then what the workers (each
    process tree) and Redis hold once all are in place. The fleet is killed afterwards with what it holds."""
    base.client.flushdb()
    fleet = start_all(base.fleet())
    try:
        time.sleep(3)  # let freshly started processes settle
        before = {"workers": fleet_memory(fleet), "redis": redis_state(base.client)}
        items, enqueue_s, held_s, all_held = enqueue_and_hold(args, base)
        time.sleep(3)  # RQ's scheduler polls every second: a few passes over them
        after = {"workers": fleet_memory(fleet), "redis": redis_state(base.client)}
    finally:
        for worker in fleet:
            worker.kill()  # their messages are never due; the DB is flushed next
        base.client.flushdb()
    growth = workers_growth(before, after)
    return {
        "messages": len(items),
        "workers": len(fleet),
        "enqueue_s": enqueue_s,
        "enqueue_per_s": len(items) / enqueue_s,
        "all_held": all_held,
        "held_after_s": held_s,
        "before": before,
        "after": after,
        **growth,
        "rss_per_message_kb": growth["workers_tree_rss_growth_total_mb"] * 1024 / len(items),
        "redis_used_memory_growth_mb": after["redis"]["used_memory_mb"] - before["redis"]["used_memory_mb"],
        "redis_db_keys_memory_mb": after["redis"]["db_keys_memory_mb"],
        "redis_bytes_per_message": after["redis"]["db_keys_memory_mb"] * MB / len(items),
        "redis_messages_held": after["redis"]["messages_held"],
    }


def enqueue_and_hold(args, base):
    """Schedule the far-future messages, then wait (at most --baseline-timeout) until the baseline holds
    them all (Celery: the workers reserved them). (items, enqueue seconds, seconds until held, all held)."""
    first_due = time.time() + 86400
    items = [(str(uuid.uuid4()), first_due + i / 1000) for i in range(args.baseline_pending)]
    started = time.perf_counter()
    base.enqueue(items, "pending")
    enqueue_s = time.perf_counter() - started
    deadline = time.time() + args.baseline_timeout
    while not base.ready(len(items)) and time.time() < deadline:
        time.sleep(1)
    return items, enqueue_s, time.perf_counter() - started, base.ready(len(items))


def baseline_steady(args, base, provider):
    """Phase 2's due times for a baseline, scheduled from this process before the first is due."""
    count = round(args.rate * args.duration)
    mark = provider.count()
    started = time.time()
    t0 = started + args.lead
    items = [(str(uuid.uuid4()), t0 + i / args.rate) for i in range(count)]
    base.enqueue(items, "steady")
    created = time.time()
    due_by_id = dict(items)
    arrivals = arrivals_at(provider, mark, due_by_id, last_due=items[-1][1])
    return {
        "rate_per_s": args.rate,
        "duration_s": args.duration,
        "created": count,
        "create_s": created - started,
        "create_per_s": count / (created - started),
        "lead_s": args.lead,
        "created_before_first_due": created <= t0,
        **delivery_report(due_by_id, arrivals),
        "samples_ms": lateness_samples_ms(due_by_id, arrivals),
    }


def baseline_burst(args, base, provider, fleet):
    """Phase 3 for a baseline: --burst messages due at the same whole second, --burst-lead ahead."""
    mark = provider.count()
    started = time.time()
    due = math.ceil(started + args.burst_lead)
    items = [(str(uuid.uuid4()), due) for _ in range(args.burst)]
    base.enqueue(items, "burst")
    created = time.time()
    ready_at = first_time_before(due, lambda: base.ready(args.burst))
    held = measured_before(due, lambda: {"workers": fleet_memory(fleet)})  # with the whole burst scheduled
    due_by_id = dict(items)
    arrivals = arrivals_at(provider, mark, due_by_id, last_due=due)
    return {
        "messages": args.burst,
        "lead_s": due - started,
        "create_s": created - started,
        "create_per_s": args.burst / (created - started),
        "ready_s": None if ready_at is None else ready_at - started,
        "ready_before_due": ready_at is not None,
        **drain_figures(arrivals, due, args.burst),
        **delivery_report(due_by_id, arrivals),
        "held_before_due": held,
        "samples_ms": lateness_samples_ms(due_by_id, arrivals),
    }


def phase_baseline(args, base, provider):
    """Phases 1-3 for one baseline: pending with one fleet, then steady and burst with a fresh one."""
    print(f"  {base.name}: {args.baseline_pending} far-future messages", flush=True)
    results = {"pending": baseline_pending(args, base)}
    fleet = start_all(base.fleet())
    try:
        time.sleep(2)
        print(f"  {base.name}: {args.rate:g}/s for {args.duration:g} s", flush=True)
        results["lateness"] = baseline_steady(args, base, provider)
        print(f"  {base.name}: burst of {args.burst}", flush=True)
        results["burst"] = baseline_burst(args, base, provider, fleet)
        results["fleet_after"] = fleet_memory(fleet)
    finally:
        for worker in fleet:
            worker.stop()
        base.client.flushdb()
    return results


# --- Report ---------------------------------------------------------------------------------------


def table(results):
    rows = [*pending_rows(results), *lateness_rows(results), *burst_rows(results), *noop_rows(results)]
    return render(("figure", "value", "target", "met"), rows)


def yes(ok):
    return "yes" if ok else "NO"


def fmt(value, form="{:.1f}"):
    return "n/a" if value is None else form.format(value)


def pending_rows(results):
    p, pg = results["pending"], results["pending"]["postgres_after"]
    return [
        ("PENDING (far future, 1 day ahead)", "", "", ""),
        (
            "  rows created (bulk_create, 5000 a batch)",
            f"{p['messages']} in {p['insert_s']:.1f} s ({p['insert_per_s']:.0f} rows/s)",
            "",
            "",
        ),
        (
            "  worker RSS growth, per worker (tree)",
            ", ".join(f"{n} {g['tree_rss_mb']:+.1f} MB" for n, g in p["worker_growth_mb"].items()),
            "< 50 MB",
            yes(p["max_worker_tree_rss_growth_mb"] < TARGETS["pending_worker_rss_growth_mb"]),
        ),
        (
            "  worker RSS after, per worker (tree)",
            ", ".join(f"{n} {m['tree_rss_mb']:.1f} MB" for n, m in p["after"]["workers"].items()),
            "",
            "",
        ),
        ("  pump RSS growth", f"{p['pump_rss_growth_mb']:+.1f} MB", "", ""),
        (
            "  Redis messages held / celery queue",
            f"{p['redis_messages_held']} / {p['after']['redis']['celery_queue_len']}",
            "0",
            yes(p["redis_messages_held"] == TARGETS["pending_redis_messages"]),
        ),
        (
            "  Redis used_memory growth (server); DB keys",
            f"{p['redis_used_memory_growth_mb']:+.2f} MB; {p['redis_db_keys_memory_mb']:.3f} MB",
            "",
            "",
        ),
        ("  handed over by the pump", str(p["handed_over"]), "0", yes(p["handed_over"] == 0)),
        (
            f"  PostgreSQL {pg['table']} (table + indexes)",
            f"{pg['total_mb']:.1f} MB: heap {pg['heap_mb']:.1f} MB, indexes {pg['indexes_mb']:.1f} MB"
            f" ({p['postgres_bytes_per_message']:.0f} B/message grown)",
            "",
            "",
        ),
    ]


def lateness_rows(results):
    late = results["lateness"]
    return [
        (f"LATENESS ({late['rate_per_s']:g}/s for {late['duration_s']:g} s, {args_workers(results)})", "", "", ""),
        (
            f"  created via message_schedule ({late['creators']} processes)",
            f"{late['created']} in {late['create_s']:.1f} s, first due after {late['lead_s']:g} s"
            + ("" if late["created_before_first_due"] else " (overlapped sending)"),
            "",
            "",
        ),
        delivered_row(late),
        (
            "  lateness p50",
            f"{fmt(late['p50_ms'])} ms",
            "< 100 ms",
            yes(late["p50_ms"] is not None and late["p50_ms"] < 100),
        ),
        ("  lateness p95", f"{fmt(late['p95_ms'])} ms", "", ""),
        (
            "  lateness p99",
            f"{fmt(late['p99_ms'])} ms",
            "< 500 ms",
            yes(late["p99_ms"] is not None and late["p99_ms"] < 500),
        ),
        ("  lateness max (min)", f"{fmt(late['max_ms'])} ms ({fmt(late['min_ms'])} ms)", "", ""),
        connections_row(late),
        ("  re-handed by the pump as lost", str(late["rehanded_as_lost"]), "", ""),
        *cost_rows(late),
    ]


def cost_rows(phase):
    """What each message cost the stores and the workers (costs.py)."""
    cost = phase.get("costs") or {}
    if not cost:
        return []
    top = ", ".join(f"{name} {calls:.2f}" for name, calls in list(cost["redis_commands_per_message"].items())[:6])
    return [
        (
            "  PostgreSQL per message: commits / row writes",
            f"{cost['postgres_per_message']['xact_commit']:.2f} / {cost['postgres_row_writes_per_message']:.2f}",
            "",
            "",
        ),
        ("  Redis calls per message", f"{cost['redis_calls_per_message']:.2f} ({top})", "", ""),
        (
            "  worker CPU per message",
            f"{cost['worker_cpu_ms_per_message']:.2f} ms ({fmt(cost['messages_per_worker_cpu_s'], '{:.0f}')}"
            " messages per worker CPU second)",
            "",
            "",
        ),
    ]


def delivered_row(phase):
    return (
        "  sent / lost / duplicated",
        f"{phase['sent']} / {phase['lost']} / {phase['duplicated']}",
        "lost 0, dup 0",
        yes(phase["lost"] == 0 and phase["duplicated"] == 0),
    )


def connections_row(phase):
    return (
        "  PostgreSQL connections opened",
        f"{phase['db_connections_opened']} ({phase['db_connections_opened'] / max(1, phase['sent']):.2f} per message)",
        "",
        "",
    )


def burst_rows(results):
    burst = results["burst"]
    rows = [
        (f"BURST ({burst['messages']} due at the same instant)", "", "", ""),
        (
            f"  created ({burst['created_by']}), handed over + reserved",
            f"{burst['create_s']:.1f} s, {fmt(burst['handed_over_and_reserved_s'])} s;"
            f" due after {burst['lead_s']:.0f} s"
            + ("" if burst["handed_over_before_due"] else " (NOT all reserved before due)"),
            "",
            "",
        ),
        delivered_row(burst),
        ("  drain: last arrival - due", f"{fmt(burst['drain_s'], '{:.2f}')} s", "", ""),
        ("  drain rate", f"{fmt(burst['drain_per_s'])} msg/s", "", ""),
        (
            "  lateness first / p50 / p99",
            f"{fmt(burst['min_ms'])} / {fmt(burst['p50_ms'])} / {fmt(burst['p99_ms'])} ms",
            "",
            "",
        ),
        connections_row(burst),
        *cost_rows(burst),
        (
            "  re-handed by the pump as lost",
            f"{burst['rehanded_as_lost']} (pending {results['dispatch_settings']['DISPATCH_STALE_AFTER']:g} s"
            " past due)",
            "",
            "",
        ),
    ]
    if burst["held_before_due"]:
        rows.append(
            (
                "  worker RSS holding the burst (tree)",
                ", ".join(f"{n} {m['tree_rss_mb']:.1f} MB" for n, m in burst["held_before_due"]["workers"].items()),
                "",
                "",
            )
        )
    return rows


def noop_rows(results):
    noop = results["noop"]
    return [
        (f"RAW CELERY NO-OP ({noop['tasks']} tasks, same worker setup)", "", "", ""),
        ("  first start -> last finish", f"{fmt(noop['run_s'], '{:.2f}')} s ({noop['done']} done)", "", ""),
        ("  no-op rate", f"{fmt(noop['noop_per_s'])} tasks/s", "", ""),
        (
            "RATIO drain rate / no-op rate",
            fmt(results["drain_to_noop_ratio"], "{:.2f}"),
            ">= 0.5",
            yes(results["drain_to_noop_ratio"] is not None and results["drain_to_noop_ratio"] >= 0.5),
        ),
    ]


def args_workers(results):
    a = results["args"]
    return f"{a['workers']} workers x concurrency {a['concurrency']}"


def render(header, rows):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def held_bytes_per_message(pending):
    """Everything a far-future message costs while it waits: workers' RSS, Redis keys, PostgreSQL rows."""
    mb = (
        pending["workers_tree_rss_growth_total_mb"]
        + pending["redis_db_keys_memory_mb"]
        + pending.get("postgres_growth_mb", 0)
    )
    return mb * MB / pending["messages"]


def comparison(results):
    """The product and each baseline side by side, each measured as the product is, and product/baseline
    where the ratio means something (rates, lateness, memory per message); "" without baselines."""
    systems = {
        "product": {phase: results[phase] for phase in ("pending", "lateness", "burst")},
        **results.get("brokers", {}),
        **results.get("baselines", {}),
    }
    if len(systems) == 1:
        return ""
    baselines = [name for name in systems if name != "product"]
    out = [comparison_row(row, systems, baselines) for row in comparison_rows(results)]
    header = ("product vs baselines", *systems, *[f"product/{name}" for name in baselines])
    return render(header, out)


def comparison_rows(results):
    """(label, value from one system's phases, format, ratio); a KeyError or None shows as n/a."""
    noop = results["noop"]["noop_per_s"]
    rss_held = lambda s: sum(m["tree_rss_mb"] for m in s["burst"]["held_before_due"]["workers"].values())  # noqa: E731
    trio = lambda r: f"{r['sent']} / {r['lost']} / {r['duplicated']}"  # noqa: E731
    return [
        ("PENDING (far future, 1 day ahead)", None, "", False),
        ("  messages", lambda s: s["pending"]["messages"], "{}", False),
        (
            "  created per s (product: bulk_create rows)",
            lambda s: s["pending"].get("enqueue_per_s") or s["pending"]["insert_per_s"],
            "{:.0f}",
            True,
        ),
        ("  all held by the workers / Redis after, s", lambda s: s["pending"]["held_after_s"], "{:.1f}", False),
        (
            "  workers' RSS growth, all trees, MB",
            lambda s: s["pending"]["workers_tree_rss_growth_total_mb"],
            "{:+.1f}",
            False,
        ),
        ("  Redis DB keys, MB", lambda s: s["pending"]["redis_db_keys_memory_mb"], "{:.2f}", False),
        (
            "  Redis used_memory growth (server), MB",
            lambda s: s["pending"]["redis_used_memory_growth_mb"],
            "{:+.2f}",
            False,
        ),
        ("  PostgreSQL table + indexes growth, MB", lambda s: s["pending"]["postgres_growth_mb"], "{:.2f}", False),
        ("  bytes held per message (all of the above)", lambda s: held_bytes_per_message(s["pending"]), "{:.0f}", True),
        (
            f"LATENESS ({results['lateness']['rate_per_s']:g}/s for {results['lateness']['duration_s']:g} s)",
            None,
            "",
            False,
        ),
        ("  created per s (product: message_schedule)", lambda s: s["lateness"]["create_per_s"], "{:.0f}", True),
        ("  sent / lost / duplicated", lambda s: trio(s["lateness"]), "{}", False),
        *[
            (f"  lateness {k}, ms", lambda s, k=k: s["lateness"][f"{k}_ms"], "{:.1f}", True)
            for k in ("p50", "p95", "p99", "max")
        ],
        (
            "  lateness min, ms (early: messages sent early)",
            lambda s: f"{s['lateness']['min_ms']:.1f} (early {s['lateness']['early']})",
            "{}",
            False,
        ),
        *comparison_cost_rows("lateness"),
        (f"BURST ({results['burst']['messages']} due at the same instant)", None, "", False),
        ("  sent / lost / duplicated", lambda s: trio(s["burst"]), "{}", False),
        (
            "  held ready for the due time after, s",
            lambda s: s["burst"]["ready_s"] if "ready_s" in s["burst"] else s["burst"]["handed_over_and_reserved_s"],
            "{:.1f}",
            False,
        ),
        ("  workers' RSS holding the burst (absolute), MB", rss_held, "{:.1f}", False),  # Django's share included
        ("  drain: last arrival - due, s", lambda s: s["burst"]["drain_s"], "{:.2f}", True),
        ("  drain rate, msg/s", lambda s: s["burst"]["drain_per_s"], "{:.1f}", True),
        ("  drain rate / raw Celery no-op rate", lambda s: s["burst"]["drain_per_s"] / noop, "{:.2f}", False),
        ("  lateness p50 / p99, ms", lambda s: f"{s['burst']['p50_ms']:.0f} / {s['burst']['p99_ms']:.0f}", "{}", False),
        *comparison_cost_rows("burst"),
    ]


def comparison_cost_rows(phase):
    """The product's costs per message (costs.py), on each broker; the baselines are not measured so."""
    return [
        (
            "  PostgreSQL commits per message",
            lambda s: s[phase]["costs"]["postgres_per_message"]["xact_commit"],
            "{:.2f}",
            False,
        ),
        (
            "  PostgreSQL row writes per message",
            lambda s: s[phase]["costs"]["postgres_row_writes_per_message"],
            "{:.2f}",
            False,
        ),
        ("  Redis calls per message", lambda s: s[phase]["costs"]["redis_calls_per_message"], "{:.2f}", False),
        ("  worker CPU ms per message", lambda s: s[phase]["costs"]["worker_cpu_ms_per_message"], "{:.2f}", False),
    ]


def comparison_row(row, systems, baselines):
    """A row's cell for each system, then product/baseline for each baseline where the row has a ratio."""
    label, getter, form, ratio = row
    if getter is None:
        return (label, *[""] * (len(systems) + len(baselines)))
    values = {name: figure_of(getter, phases) for name, phases in systems.items()}
    cells = ["n/a" if v is None else form.format(v) for v in values.values()]
    ratios = [ratio_text(values["product"], values[name]) if ratio else "" for name in baselines]
    return (label, *cells, *ratios)


def figure_of(getter, system):
    try:
        return getter(system)
    except (KeyError, TypeError, ZeroDivisionError):  # a figure this system lacks, or None
        return None


def ratio_text(product, baseline):
    numbers = isinstance(product, (int, float)) and isinstance(baseline, (int, float))
    return f"{product / baseline:.2f}" if numbers and baseline > 0 and product >= 0 else ""


# --- Main -----------------------------------------------------------------------------------------


def run(args, results):
    log_dir = logs_dir(args.out)
    broker = scratch_redis(args.redis, args.redis_db)
    bench_broker = scratch_redis(args.redis, args.bench_redis_db)
    provider = Provider(log_dir, args.provider_latency_ms, args.provider_rate_cap)
    env = set_up_product(args, provider.url, results)
    sessions = bench_sessions()
    creators = start_creators(args.creators)
    fleet, pump = start_fleet(args, env, log_dir)

    results["loadavg_1m_before"] = {}
    results["pending"] = run_phase(
        results,
        "pending",
        f"phase 1: {args.pending} far-future messages",
        lambda: phase_pending(args, fleet, pump, broker, sessions["pending"]),
    )
    meter = lambda settle="": costs.snapshot(broker, fleet, pump, settle=settle)  # noqa: E731
    results["lateness"] = run_phase(
        results,
        "lateness",
        f"phase 2: {args.rate:g}/s for {args.duration:g} s",
        lambda: phase_lateness(args, provider, sessions["lateness"], creators, meter),
    )
    results["burst"] = run_phase(
        results,
        "burst",
        f"phase 3: burst of {args.burst}",
        lambda: phase_burst(
            args, provider, sessions["burst"], fleet, broker, creators, lambda: redis_state(broker)["queued"], meter
        ),
    )
    results["fleet_after"] = fleet_memory(fleet)
    for child in [pump, *fleet]:
        child.stop()
    results["brokers"] = {}
    if args.rabbitmq:
        results["brokers"]["rabbitmq"] = run_phase(
            results,
            "rabbitmq",
            "phases 2 and 3 with RabbitMQ as the broker",
            lambda: phase_on_rabbitmq(args, env, log_dir, provider, broker),
        )

    results["noop"] = run_phase(
        results,
        "noop",
        f"phase 4: {args.burst} raw Celery no-op tasks",
        lambda: phase_noop(args, log_dir, bench_broker, product_celery_config()),
    )
    drain, noop = results["burst"]["drain_per_s"], results["noop"]["noop_per_s"]
    results["drain_to_noop_ratio"] = drain / noop if drain and noop else None
    results["baselines"] = {}
    for number, name in ((5, "celery"), (6, "rq")):
        if name in args.baselines:
            make = celery_baseline if name == "celery" else rq_baseline
            results["baselines"][name] = run_phase(
                results,
                name,
                f"phase {number}: {name} baseline",
                lambda make=make: phase_baseline(args, make(args, log_dir, provider), provider),
            )


def run_phase(results, name, title, measure):
    """One phase's figures, after its title and the 1-minute load average before it (the machine is shared)."""
    results["loadavg_1m_before"][name] = os.getloadavg()[0]
    print(title, flush=True)
    return measure()


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    results = {**run_record(args), "targets": TARGETS}
    finished = run_exclusively(f"dispatch-{args.db_name}", lambda: run(args, results), lambda: cleanup(args))
    if not finished or "noop" not in results:
        return 1
    results["elapsed_s"] = time.time() - started
    runs = [results, *results["brokers"].values()]
    lost_or_dup = sum(run[p][k] for run in runs for p in ("lateness", "burst") for k in ("lost", "duplicated"))
    results["ok"] = lost_or_dup == 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "dispatch.json", results)
    print_report(results, out)
    if not args.no_charts:
        draw_charts(out / "dispatch.json")
    if lost_or_dup:
        print(f"FAILED: {lost_or_dup} message(s) lost or duplicated", file=sys.stderr)
        return 1
    return 0


def print_report(results, out):
    print()
    print(table(results))
    if compared := comparison(results):
        print()
        print(compared)
    print(f"\n{results['command']}\ntook {results['elapsed_s']:.0f} s; results in {out / 'dispatch.json'}")


def take_samples(results):
    """Move the per-message samples out of the phases into results["samples"], which the charts read:
    steady lateness and burst arrivals since the due time (no-op: finishes since the first start), in ms."""
    systems = {"product": results, **results.get("brokers", {}), **results.get("baselines", {})}
    samples = {"steady_lateness_ms": {}, "burst_offsets_ms": {}}
    for name, phases in systems.items():
        for phase, key in (("lateness", "steady_lateness_ms"), ("burst", "burst_offsets_ms")):
            if phase in phases:
                samples[key][name] = phases[phase].pop("samples_ms")
    if "noop" in results:
        samples["burst_offsets_ms"]["noop"] = results["noop"].pop("samples_ms")
    results["samples"] = samples


def write_results(path, results):
    """dispatch.json, indented, except the samples: one compact line per list (tens of thousands of numbers)."""
    take_samples(results)
    samples = results.pop("samples")
    text = json.dumps(results, indent=2, default=str)
    lists = ",\n".join(
        f"    {json.dumps(kind)}: {{"
        + ", ".join(
            f"{json.dumps(name)}: {json.dumps(values, separators=(',', ':'))}" for name, values in by_system.items()
        )
        + "}"
        for kind, by_system in samples.items()
    )
    path.write_text(text[:-2] + ',\n  "samples": {\n' + lists + "\n  }\n}\n")
    results["samples"] = samples


def draw_charts(path):
    """charts.py's PNGs next to the JSON; a missing matplotlib (requirements-bench.txt) skips them, no failure."""
    try:
        import charts
    except ImportError as exc:
        print(f"no charts: {exc} (pip install -r requirements-bench.txt)", file=sys.stderr)
        return
    for written in charts.draw(path):
        print(f"chart {written}")


def cleanup(args):
    # Only the DBs this run used: another run may be using the RQ DB while this one skips RQ.
    dbs = (args.redis_db, args.bench_redis_db, *([args.rq_redis_db] if "rq" in args.baselines else []))
    release_scratch(args.pg, args.db_name, [f"{args.redis}/{db}" for db in dbs], drop_db=not args.keep_db)


if __name__ == "__main__":
    sys.exit(main())
