"""Chaos run: workers SIGKILLed and restarted, the broker flushed, stopped for 30 s and started empty,
PostgreSQL restarted, the pump restarted, mid-flight.

    .venv/bin/python bench/chaos.py [--messages 5000] [--spread 90] [--workers 3]

Everything is real and local, and the services it takes away are its own: a PostgreSQL cluster
(initdb in a scratch directory, on a free port; the database migrated) and a `redis-server` (a free
port, nothing kept on disk, so a restart comes back empty, as the shared one would), never the
machine's shared ones. `--workers` x
`celery -A project worker --concurrency 2` and one `manage.py dispatch_pump`, as the Procfile runs
them, with the `http` transport pointed at bench/provider.py (which records every request with its
`Idempotency-Key` and deduplicates nothing, so a double send shows; it answers each send after
`--provider-latency-ms`, 200 by default, as real providers do) and paced fleet-wide at
`--transport-rate` (150/s), and the session's webhook URL pointed at a receiver in this process (which
records every `webhook-id`).

`--messages` are scheduled through `services.message_schedule` (in this process, after django.setup()),
due evenly over `--spread` seconds from about `--lead` (10) seconds after they are all written. While
they fall due, a random worker that is up is SIGKILLed (its whole process group, as an OOM kill or a
lost host would) every `--kill-min`..`--kill-max` seconds and started again at once, the broker DB is
flushed once (half-way), the pump is SIGKILLed and started again once (a third of the way),
PostgreSQL is restarted (`pg_ctl restart -m fast`, a fifth of the way) and Redis is stopped for
`--redis-outage` (30) seconds from 60 % of the way, then started again, empty. The fleet itself is
never restarted for these: the workers and the pump must reconnect on their own.
`--campaign` (1000) more messages are all due at one instant, 40 % of the way: stored as rows beyond
the horizon, so the pump hands them over by tick (one task claims up to DISPATCH_SEND_BATCH). Then
the run waits until every message is final and every webhook delivered (at most `--timeout` after the
last due time, or until nothing changed for `--stall` seconds), checks the provider's record and the
database, and prints one line:

    5000 scheduled, 5000 sent, 0 lost, 0 duplicated, 5000 webhooks, 0 missing

- sent: the message is `sent` in the database and its key reached the provider.
- lost: anything else, except a message `failed` with "Outcome unknown" (the at-most-once answer
  for a transport that cannot deduplicate; the `http` transport can, so there should be none).
  A message still pending when the wait ends counts as lost, and the line after says so.
- duplicated: keys that reached the provider more than once. A resend after a lease recovery
  (the pump's "lease expired" event: a worker died mid-send) carries the same key, so a
  deduplicating provider applies it once: that is the design, and it is reported as such.
  A duplicate that no lease recovery explains is a bug.
- webhooks: distinct `webhook-id`s received; missing: final messages whose event never arrived.
- recovery: how long after the broker came back (or after its due time, if later) each message due
  during the outage (or in the 10 s after it) reached the provider; and the lateness of the messages
  due in the 10 s after the flush and after the PostgreSQL restart. p50 and max of each.
- a worker or pump that exited on its own (not killed by the run) fails the run.

Recovery timings are shortened (RECOVERY_ENV below; `--stale-after`, `--lease`) so that a killed
worker's messages are recovered within seconds instead of the production minutes. Every other
setting is the production default. On 2 shared cores the default run (5,000 in 60 s plus the
campaign) falls behind under this chaos and settles some seconds after the last due time: about 2.5
minutes in all.

Exits 1 on any lost message, missing webhook, unexplained duplicate or process that died on its own.
Process logs go to `--out`/logs (bench/results/chaos/logs). The PostgreSQL cluster is removed after a
clean run and left running after a failed one (`--keep-db` keeps it always), for a look at the
messages' history; the run prints its URL and how to stop it.
"""

import asyncio
import atexit
import json
import random
import re
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from fleet import Child, Provider, celery_worker, dispatch_pump, logs_dir, start_all
from local_http import JsonAnswering
from options import add_result_options, runner_parser
from product import ROOT, child_env, migrate, setup_django
from runs import run_exclusively
from scratch import create_database
from stats import percentile

sys.path.insert(0, str(ROOT))

from tests.servers import PostgresServer, RedisServer  # noqa: E402

TO = "15550001234"


def parse_args(argv=None):
    parser = runner_parser(__doc__)
    parser.add_argument("--messages", type=int, default=5000, help="messages to schedule")
    parser.add_argument("--spread", type=float, default=90.0, help="seconds over which they fall due")
    parser.add_argument(
        "--campaign",
        type=int,
        default=1000,
        help="more messages, all due at one instant mid-run (stored rows the pump hands over in batches)",
    )
    parser.add_argument("--workers", type=int, default=3, help="worker processes (each --concurrency of them)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="pool processes per worker (2, not the Procfile's 8: an 8-process worker seldom finishes starting "
        "between two kills on 2 cores)",
    )
    parser.add_argument("--lead", type=float, default=10.0, help="the first is due this long after all are written")
    parser.add_argument("--kill-min", type=float, default=4.0, help="shortest pause between two worker kills (s)")
    parser.add_argument("--kill-max", type=float, default=8.0, help="longest pause between two worker kills (s)")
    parser.add_argument("--no-flush", action="store_true", help="do not flush the broker")
    parser.add_argument("--no-pump-restart", action="store_true", help="do not restart the pump")
    parser.add_argument("--no-kill", action="store_true", help="do not kill workers (a control run)")
    parser.add_argument(
        "--redis-outage",
        type=float,
        default=30.0,
        help="seconds Redis is stopped for, from 60 %% of the spread (0: never stopped)",
    )
    parser.add_argument("--no-pg-restart", action="store_true", help="do not restart PostgreSQL")
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="after the last due time, wait at most this long for every message to be final",
    )
    parser.add_argument(
        "--stall",
        type=float,
        default=60.0,
        help="stop waiting earlier when no message or webhook changed state for this long",
    )
    parser.add_argument(
        "--stale-after", type=float, default=5.0, help="DISPATCH_STALE_AFTER_SECONDS (default 60 in production)"
    )
    parser.add_argument("--lease", type=float, default=20.0, help="DISPATCH_LEASE_SECONDS (default 120 in production)")
    parser.add_argument(
        "--provider-latency-ms", type=float, default=200.0, help="the provider answers each send this much later"
    )
    parser.add_argument(
        "--transport-rate",
        default="150/s",
        help="TRANSPORT_RATE: the fleet-wide pacing of the provider's transport ('' for none)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed of the kill schedule")
    parser.add_argument("--db-name", default="chaos_scheduler")
    add_result_options(
        parser,
        out=ROOT / "bench" / "results" / "chaos",
        keep_db_help="keep the PostgreSQL cluster after a clean run too",
    )
    return parser.parse_args(argv)


# Shortened recovery timings, so that a killed worker's work is recovered within seconds, not minutes.
RECOVERY_ENV = {
    "DISPATCH_STALE_AFTER_SECONDS": "5",  # a lost hand-over is re-handed 5 s past due (default 60)
    "DISPATCH_LEASE_SECONDS": "20",  # a message held by a dead worker is recovered after 20 s (default 120)
    "SEND_TIME_LIMIT_SECONDS": "15",  # (default 60; must stay below the lease)
    "TRANSPORT_TIMEOUT_SECONDS": "5",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
    "WEBHOOK_RETRY_SCHEDULE": "1,2,5,10,20,30",  # (default 5 s, 5 min, 30 min, ...)
    "WEBHOOK_ALLOW_PRIVATE": "1",  # the receiver is on 127.0.0.1
}


# --- The webhook receiver (the provider, workers and pump come from bench/fleet.py) ----------------


class WebhookReceiver:
    """Answers 200 to every POST and records (webhook-id, event, scheduledId, arrival); in a thread."""

    def __init__(self):
        self.records: list[tuple[str, str, str, float]] = []
        self.errors = 0
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.started.wait(10):
            raise RuntimeError("the webhook receiver did not start")
        self.url = f"http://127.0.0.1:{self.port}/hooks"

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def serve():
            server = await self.loop.create_server(lambda: WebhookProtocol(self), "127.0.0.1", 0, backlog=1024)
            self.port = server.sockets[0].getsockname()[1]
            self.started.set()
            await server.serve_forever()

        self.loop.run_until_complete(serve())


class WebhookProtocol(JsonAnswering):
    def __init__(self, receiver):
        self.receiver = receiver

    def answer(self, method, target, headers, body):
        try:
            payload = json.loads(body or b"{}")
            self.receiver.records.append(
                (headers.get("webhook-id", ""), payload.get("event", ""), payload.get("scheduledId", ""), time.time())
            )
        except ValueError:
            self.receiver.errors += 1
        return {}


# --- Set-up ---------------------------------------------------------------------------------------


def product_settings(args, provider_url):
    """The settings the product runs with: shortened recovery timings, the production defaults otherwise."""
    return {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "chaos",
        "DATABASE_URL": f"{args.pg}/{args.db_name}",
        "REDIS_URL": args.redis,
        "TRANSPORT_URL": provider_url,
        **RECOVERY_ENV,
        "DISPATCH_STALE_AFTER_SECONDS": f"{args.stale_after:g}",
        "DISPATCH_LEASE_SECONDS": f"{args.lease:g}",
        "TRANSPORT_RATE": args.transport_rate,
    }


def start_servers(args, state):
    """The run's own Redis and PostgreSQL, which it stops and restarts."""
    state["redis_server"] = redis_server = RedisServer().start()
    state["pg_server"] = pg_server = PostgresServer().start()
    args.redis, args.pg = redis_server.url, pg_server.url.rsplit("/", 1)[0]
    create_database(args.pg, args.db_name)


def set_up_product(args, provider_url, log_dir, state):
    """The run's database migrated and the product's code in this process; returns its processes' environment."""
    settings = product_settings(args, provider_url)
    env = child_env(settings)
    print(
        f"own PostgreSQL at {args.pg} (database {args.db_name}), own Redis at {args.redis}; logs in {log_dir}",
        flush=True,
    )
    migrate(env)
    setup_django(settings)
    state["settings"] = {key: settings[key] for key in RECOVERY_ENV}
    return env


# --- The run --------------------------------------------------------------------------------------


class Fleet:
    """The worker slots and the pump; kills and restarts are counted."""

    def __init__(self, args, env, log_dir):
        self.args, self.env, self.log_dir = args, env, log_dir
        self.generation = Counter()
        self.workers = [self._new_worker(slot) for slot in range(args.workers)]
        self.pump_generation = 1
        self.pump = dispatch_pump(env, log_dir, name="pump-1")
        self.kills = self.worker_restarts = self.pump_restarts = 0
        self.events: list[tuple[float, str]] = []

    def _new_worker(self, slot):
        self.generation[slot] += 1
        return celery_worker(
            f"w{slot + 1}-{self.generation[slot]}", "project", self.env, self.log_dir, self.args.concurrency
        )

    def start(self):
        start_all([*self.workers, self.pump])

    def kill_random_worker(self, rng, wait=10.0):
        """SIGKILL a random worker that is up (one still starting holds no work), then start it again."""
        deadline = time.time() + wait
        while True:
            ready = [slot for slot, worker in enumerate(self.workers) if worker.is_ready()]
            if ready or time.time() > deadline:
                break
            time.sleep(0.1)
        slot = rng.choice(ready) if ready else rng.randrange(len(self.workers))
        victim = self.workers[slot]
        was_ready = slot in ready
        victim.kill()
        self.kills += 1
        self.workers[slot] = self._new_worker(slot).start()
        self.worker_restarts += 1
        self.events.append(
            (
                time.time(),
                f"SIGKILL {victim.name}{'' if was_ready else ' (none was up: killed one still starting)'};"
                f" started {self.workers[slot].name}",
            )
        )

    def died_on_their_own(self):
        """The processes of the fleet now running that exited without being killed by this run."""
        return [child.name for child in [*self.workers, self.pump] if child.popen.poll() is not None]

    def restart_pump(self):
        old = self.pump
        old.kill()
        self.pump_generation += 1
        self.pump = dispatch_pump(self.env, self.log_dir, name=f"pump-{self.pump_generation}").start()
        self.pump_restarts += 1
        self.events.append((time.time(), f"SIGKILL {old.name}; started {self.pump.name}"))


def schedule_messages(session, first_due, spread, count):
    from scheduling import services

    ids = {}
    for i in range(count):
        due = first_due + (spread * i / max(1, count - 1) if count > 1 else 0.0)
        message = services.message_schedule(
            session=session, scheduled_at=datetime.fromtimestamp(due, UTC), to=TO, text=f"chaos {i}"
        )
        ids[message.id] = due
    return ids


def store_campaign(session, due, count):
    """Rows as message_schedule stores messages due beyond the horizon, so the pump hands them over,
    in batches since they share their due time: how a campaign scheduled days ahead goes out."""
    from scheduling.models import ScheduledMessage

    at = datetime.fromtimestamp(due, UTC)
    rows = [
        ScheduledMessage(session=session, to=TO, text=f"campaign {i}", scheduled_at=at, due_at=at) for i in range(count)
    ]
    ScheduledMessage.objects.bulk_create(rows, batch_size=5000)
    return {row.id: due for row in rows}


def calibrate(session, sample=100):
    """Seconds per message_schedule call for a message due within the horizon (so handed to Celery on
    commit, as the run's messages are). The calibration messages are cancelled at once: their tasks,
    due minutes later, find nothing to send."""
    from scheduling import services

    due = datetime.now(UTC) + timedelta(minutes=4)
    started = time.perf_counter()
    messages = [
        services.message_schedule(session=session, scheduled_at=due, to=TO, text=f"calibration {i}")
        for i in range(sample)
    ]
    elapsed = time.perf_counter() - started
    for message in messages:
        services.message_cancel(message=message, actor="chaos")
    return elapsed / sample


def status_counts(session):
    from scheduling.models import ScheduledMessage

    return Counter(ScheduledMessage.objects.filter(session=session).values_list("status", flat=True))


def pending_deliveries(session):
    from scheduling.models import DeliveryStatus, WebhookDelivery

    return WebhookDelivery.objects.filter(session=session, status=DeliveryStatus.PENDING).count()


def run(args, state):
    rng = random.Random(args.seed)
    log_dir = logs_dir(args.out)
    for old in log_dir.glob("*.log"):
        old.unlink()
    start_servers(args, state)
    broker = redis.Redis.from_url(args.redis)

    provider = Provider(log_dir, args.provider_latency_ms)
    receiver = WebhookReceiver()
    state.update(provider=provider, receiver=receiver)
    env = set_up_product(args, provider.url, log_dir, state)
    from scheduling import services

    session = services.session_create(name="chaos", webhook_url=receiver.url).session
    calibration = services.session_create(name="chaos-calibration").session

    print(f"starting {args.workers} worker(s) x concurrency {args.concurrency} and the pump", flush=True)
    fleet = Fleet(args, env, log_dir)
    state["fleet"] = fleet
    fleet.start()

    first_due, last_due = write_messages(args, session, calibration, state)
    for at, action in chaos_plan(args, rng, first_due, last_due):
        time.sleep(max(0.0, at - time.time()))
        act(action, fleet, broker, rng, state)
        print(f"  t={time.time() - first_due:+6.1f} s  {fleet.events[-1][1]}", flush=True)
    time.sleep(max(0.0, last_due - time.time()))
    print(f"last message due; waiting (at most {args.timeout:g} s) for every message to be final", flush=True)
    wait_until_settled(args, session, last_due, state)
    time.sleep(1.0)  # let the last requests' records land


def write_messages(args, session, calibration, state):
    """--messages through message_schedule and the campaign as stored rows, all written before the first
    is due (the time they take is measured first); returns the first and the last due time."""
    per_message = calibrate(calibration)
    write_s = per_message * args.messages * 1.15 + 1.0  # with a margin: the machine is shared
    created_at = time.time()
    first_due = created_at + write_s + args.lead
    last_due = first_due + args.spread
    print(
        f"scheduling {args.messages} messages due over {args.spread:g} s from {first_due - created_at:.1f} s on"
        f" ({per_message * 1000:.2f} ms per message_schedule measured)",
        flush=True,
    )
    due_by_id = schedule_messages(session, first_due, args.spread, args.messages)
    if args.campaign:
        campaign_due = first_due + args.spread * 0.4  # after the pump restart, before the flush
        due_by_id.update(store_campaign(session, campaign_due, args.campaign))
        print(
            f"campaign: {args.campaign} more messages due together {campaign_due - first_due:+.1f} s after the first",
            flush=True,
        )
    written = time.time()
    state.update(
        session=session, due_by_id=due_by_id, write_s=written - created_at, lead_after_written_s=first_due - written
    )
    print(f"written in {written - created_at:.1f} s; first due {first_due - written:.1f} s later", flush=True)
    return first_due, last_due


def chaos_plan(args, rng, first_due, last_due):
    """(when, action) from a few seconds before the first due time to the last one (from now, if writing overran)."""
    chaos_start = max(first_due - 3.0, time.time())
    plan = []
    if not args.no_kill:
        at = chaos_start + rng.uniform(0, args.kill_min)
        while at < last_due:
            plan.append((at, "kill"))
            at += rng.uniform(args.kill_min, args.kill_max)
    if not args.no_pump_restart:
        plan.append((first_due + args.spread / 3, "pump"))
    if not args.no_flush:
        plan.append((first_due + args.spread / 2, "flush"))
    if not args.no_pg_restart:
        plan.append((first_due + args.spread / 5, "pg-restart"))
    if args.redis_outage:
        plan.append((first_due + args.spread * 0.6, "redis-stop"))
        plan.append((first_due + args.spread * 0.6 + args.redis_outage, "redis-start"))
    return sorted(plan)


def wait_until_settled(args, session, last_due, state):
    """Until every message is final and every webhook delivered, at most --timeout past the last due time,
    or until nothing changed for --stall seconds."""
    from django.db import close_old_connections

    deadline, previous, progress_at = last_due + args.timeout, None, time.time()
    state["timed_out"] = state["stalled"] = False
    while True:
        close_old_connections()  # ours, too, was cut by the PostgreSQL restart: health-checked, reopened
        counts = (status_counts(session), pending_deliveries(session))
        if not (counts[0]["pending"] or counts[0]["sending"]) and not counts[1]:
            break
        if counts != previous:
            previous, progress_at = counts, time.time()
        if time.time() > deadline:
            state["timed_out"] = True
            break
        if time.time() - progress_at > args.stall:
            state["stalled"] = True
            break
        time.sleep(1.0)
    state["settled_after_last_due_s"] = time.time() - last_due


def act(action, fleet, broker, rng, state):
    """One step of the chaos plan; each service event's time is kept for the recovery figures."""
    if action == "kill":  # while Redis is down no worker becomes ready: do not wait for one, or the outage stretches
        return fleet.kill_random_worker(rng, wait=0.0 if state.get("redis_down") else 10.0)
    if action == "pump":
        return fleet.restart_pump()
    if action == "flush":
        keys = broker.dbsize()
        broker.flushdb()
        description = f"FLUSHDB of the broker ({keys} keys)"
        state["flushes"] = state.get("flushes", 0) + 1
    elif action == "pg-restart":
        state["pg_server"].restart()
        description = "PostgreSQL restarted (pg_ctl restart -m fast)"
    elif action == "redis-stop":
        state["redis_server"].stop()
        state["redis_down"] = True
        description = "Redis stopped (connections refused)"
    else:
        state["redis_server"].start()
        state["redis_down"] = False
        description = "Redis started again, empty"
    state.setdefault("service_events", {})[action] = time.time()
    fleet.events.append((time.time(), description))


def recovery_figures(state, first_arrival):
    """p50 and max of how long the messages each service event hit took to reach the provider: those due
    from the event to 10 s after it (or to the next event, which would be the one that held them up)."""
    events, due_by_id = state.get("service_events", {}), state["due_by_id"]
    times = sorted(events.values())

    def window_end(start):
        return min([start + 10, *(t for t in times if t > start and t != events.get("redis-start"))])

    def delays(start, end, counted_from):
        return sorted(
            first_arrival.get(key, float("inf")) - counted_from(due)
            for key, due in due_by_id.items()
            if start <= due < end
        )

    phases = {}
    if "redis-start" in events:
        back = events["redis-start"]
        phases[f"after the broker came back ({back - events['redis-stop']:.0f} s stopped)"] = delays(
            events["redis-stop"], window_end(back), lambda due: max(due, back)
        )
    for action, name in (("flush", "after the flush"), ("pg-restart", "after the PostgreSQL restart")):
        if action in events:
            phases[f"{name} (lateness)"] = delays(events[action], window_end(events[action]), lambda due: due)
    state["recovery"] = phases
    return [
        f"{name}: {len(values)} messages, first {chaos_percentile(values, 0):.2f} s,"
        f" p50 {chaos_percentile(values, 50):.2f} s, max {chaos_percentile(values, 100):.2f} s"
        for name, values in phases.items()
    ]


def check(args, state):
    """Compare the provider's record, the webhook receiver's and the database. Returns (line, details, ok)."""
    from scheduling.models import ScheduledMessage

    session, due_by_id = state["session"], state["due_by_id"]
    records = [(record[0], record[1]) for record in state["provider"].records()]
    provider_keys = Counter(key for key, _ in records)
    first_arrival = {}
    for key, arrived in records:
        first_arrival.setdefault(key, arrived)
    messages = {
        row[0]: row[1:]
        for row in ScheduledMessage.objects.filter(session=session).values_list(
            "id", "status", "last_error", "attempts"
        )
    }
    found = {
        "lateness": sorted(first_arrival[key] - due for key, due in due_by_id.items() if key in first_arrival),
        **message_history(session),
        **outcomes(due_by_id, messages, provider_keys),
    }
    found.update(duplicates(due_by_id, provider_keys, found["lease_recoveries"], found["temporary_retries"]))
    found.update(webhooks(state["receiver"], due_by_id, messages, session))
    line = (
        f"{len(due_by_id)} scheduled, {len(found['sent'])} sent, {found['lost_count']} lost,"
        f" {len(found['duplicated'])} duplicated, {len(found['webhook_ids'])} webhooks, {len(found['missing'])} missing"
    )
    details = summary_lines(args, state, found, first_arrival) + problem_lines(found)
    died = state["fleet"].died_on_their_own()
    if died:
        details.append(f"EXITED ON THEIR OWN (not killed by the run): {', '.join(died)}")
    ok = (
        not found["lost_count"]
        and not found["missing"]
        and not found["unexplained"]
        and not found["repeated_events"]
        and not died
    )
    state["report"] = {
        "line": line,
        "details": details,
        "ok": ok,
        "lost": dict(found["lost"]),
        "recovery_seconds": state.get("recovery", {}),
        "duplicated": found["duplicated"],
        "unexplained": found["unexplained"],
        "missing": found["missing"],
        "events": state["fleet"].events,
    }
    return line, details, ok


def message_history(session):
    """From the messages' history: lease recoveries and temporary-error retries per message, and the
    hand-overs the pump re-handed as lost."""
    from scheduling.models import MessageEvent

    events = MessageEvent.objects.filter(message__session=session)
    return {
        "lease_recoveries": Counter(
            events.filter(actor="pump", detail__startswith="lease expired").values_list("message_id", flat=True)
        ),
        "temporary_retries": Counter(
            events.filter(detail__startswith="temporary error").values_list("message_id", flat=True)
        ),
        "rehanded": events.filter(actor="pump", detail__contains="presumed lost").count(),
    }


def outcomes(due_by_id, messages, provider_keys):
    """Each message sent (sent in the database and at the provider), outcome unknown, or lost, by reason."""
    sent, outcome_unknown, lost = [], [], defaultdict(list)
    for message_id in due_by_id:
        status, last_error, _ = messages[message_id]
        delivered = provider_keys.get(message_id, 0)
        if status == "sent" and delivered:
            sent.append(message_id)
        elif status == "failed" and last_error.startswith("Outcome unknown"):
            outcome_unknown.append(message_id)
        elif status == "sent":
            lost["sent in the database, never reached the provider"].append(message_id)
        else:
            unfinished = " (not final when the wait ended: late or stuck)" if status in ("pending", "sending") else ""
            lost[f"{status}{unfinished}" + (f" ({last_error[:80]})" if last_error else "")].append(message_id)
    return {
        "sent": sent,
        "outcome_unknown": outcome_unknown,
        "lost": lost,
        "lost_count": sum(len(ids) for ids in lost.values()),
    }


def duplicates(due_by_id, provider_keys, lease_recoveries, temporary_retries):
    """Keys that reached the provider more than once, each explained by a lease recovery or a retry, or not."""
    duplicated = {key: n for key, n in provider_keys.items() if n > 1 and key in due_by_id}
    by_lease, by_retry, unexplained = [], [], []
    for key, n in duplicated.items():
        extra = n - 1
        if extra <= lease_recoveries[key]:
            by_lease.append(key)
        elif extra <= lease_recoveries[key] + temporary_retries[key]:
            by_retry.append(key)
        else:
            unexplained.append(key)
    return {
        "duplicated": duplicated,
        "by_lease": by_lease,
        "by_retry": by_retry,
        "unexplained": unexplained,
        "strangers": sum(n for key, n in provider_keys.items() if key not in due_by_id),
    }


def webhooks(receiver, due_by_id, messages, session):
    """What the receiver got: distinct webhook ids, final messages whose event never came, events repeated."""
    from scheduling.models import WebhookDelivery

    got_event = defaultdict(set)  # (scheduledId, event) -> webhook ids
    for webhook_id, event, scheduled_id, _ in receiver.records:
        got_event[(scheduled_id, event)].add(webhook_id)
    expected_event = {"sent": "message.sent", "failed": "message.failed", "cancelled": "message.cancelled"}
    return {
        "webhook_ids": {record[0] for record in receiver.records},
        "redelivered": sum(1 for n in Counter(record[0] for record in receiver.records).values() if n > 1),
        "missing": [
            mid
            for mid in due_by_id
            if messages[mid][0] in expected_event and not got_event.get((mid, expected_event[messages[mid][0]]))
        ],
        "repeated_events": [key for key, ids in got_event.items() if len(ids) > 1],
        "delivery_status": Counter(WebhookDelivery.objects.filter(session=session).values_list("status", flat=True)),
    }


def summary_lines(args, state, found, first_arrival):
    fleet, lateness = state["fleet"], found["lateness"]
    return [
        f"duplicated: {len(found['by_lease'])} resent with the same key after a recorded lease recovery (exactly once"
        f" at a deduplicating provider), {len(found['by_retry'])} after a temporary-error retry,"
        f" {len(found['unexplained'])} unexplained",
        f"outcome unknown (failed, not resent): {len(found['outcome_unknown'])}; lease recoveries:"
        f" {sum(found['lease_recoveries'].values())}; hand-overs re-handed as lost: {found['rehanded']};"
        f" requests with keys of no chaos message: {found['strangers']}",
        f"statuses: {dict(status_counts(state['session']))}; webhook deliveries: {dict(found['delivery_status'])};"
        f" webhook ids received more than once: {found['redelivered']}; messages with two events of one kind:"
        f" {len(found['repeated_events'])}",
        f"chaos: {fleet.kills} worker SIGKILLs, {fleet.worker_restarts} worker restarts, {state.get('flushes', 0)}"
        f" broker flush(es), {fleet.pump_restarts} pump restart(s), {0 if args.no_pg_restart else 1} PostgreSQL"
        f" restart(s), Redis stopped for {args.redis_outage:g} s",
        f"lateness (first arrival - due): p50 {chaos_percentile(lateness, 50):.2f} s,"
        f" p95 {chaos_percentile(lateness, 95):.2f} s,"
        f" p99 {chaos_percentile(lateness, 99):.2f} s, max {chaos_percentile(lateness, 100):.2f} s,"
        f" min {chaos_percentile(lateness, 0):+.3f} s",
        *("recovery " + figure for figure in recovery_figures(state, first_arrival)),
        "task runs (from the worker logs; a killed worker's last tasks may be missing):"
        f" {task_runs(Path(args.out) / 'logs')}",
        "settings: " + ", ".join(f"{key}={value}" for key, value in state["settings"].items()),
        f"timing: written in {state['write_s']:.1f} s, first due {state['lead_after_written_s']:.1f} s after;"
        f" settled {state['settled_after_last_due_s']:.1f} s after the last due time"
        + (" (TIMED OUT: --timeout)" if state["timed_out"] else "")
        + (f" (STALLED: no change for --stall {args.stall:g} s)" if state["stalled"] else ""),
    ]


def problem_lines(found):
    lines = [f"LOST {len(ids)}: {reason}; e.g. {', '.join(ids[:5])}" for reason, ids in found["lost"].items()]
    if found["unexplained"]:
        lines.append(
            "UNEXPLAINED DUPLICATES: "
            + ", ".join(f"{key} x{found['duplicated'][key]}" for key in found["unexplained"][:10])
        )
    if found["missing"]:
        lines.append(f"MISSING WEBHOOKS {len(found['missing'])}: e.g. {', '.join(found['missing'][:5])}")
    if found["repeated_events"]:
        lines.append(
            "TWO EVENTS OF ONE KIND FOR ONE MESSAGE: " + ", ".join(f"{m} {e}" for m, e in found["repeated_events"][:10])
        )
    return lines


def chaos_percentile(values, p):
    """The chaos figures' percentile, ranked with round() as they always have been; nan (printed so) when there
    are none."""
    found = percentile(values, p, rank=round)
    return float("nan") if found is None else found


def task_runs(log_dir):
    """How many times each task ran to the end, over every worker generation's log."""
    runs = Counter()
    for log in log_dir.glob("w*.log"):
        for line in log.read_text(errors="replace").splitlines():
            match = TASK_DONE.search(line)
            if match:
                runs[match.group(1)] += 1
    return dict(runs)


TASK_DONE = re.compile(r"Task (scheduling\.\w+)\[[^\]]+\] (?:succeeded|raised|failed)")


def main(argv=None):
    args = parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    atexit.register(Child.stop_all, graceful=False)  # whatever else happens, no child outlives this process
    started = time.time()
    state = {}
    print(f"chaos run, seed {args.seed}", flush=True)

    def run_and_check():
        run(args, state)
        state["line"], state["details"], state["ok"] = check(args, state)

    run_exclusively("chaos", run_and_check, lambda: cleanup(args, state, keep_db=args.keep_db or not state.get("ok")))
    line, details, ok = state.get("line"), state.get("details"), state.get("ok")
    if line is None:
        return 1
    wall = time.time() - started
    print(line)
    for detail in details:
        print("  " + detail)
    print(f"  wall time {wall:.0f} s; seed {args.seed}; logs in {Path(args.out) / 'logs'}")
    out = Path(args.out)
    (out / "chaos.json").write_text(
        json.dumps({**state["report"], "wall_s": wall, "args": vars(args)}, indent=2, default=str)
    )
    if not ok:
        print(f"FAILED; the database {args.db_name} is kept for a look at the messages' history", file=sys.stderr)
        return 1
    return 0


def cleanup(args, state, keep_db):
    """Stop the run's own servers; a failed run's PostgreSQL is left running for a look at the history."""
    if "django" in sys.modules and state.get("session") is not None:
        from django.db import connections

        connections.close_all()
    if "redis_server" in state:
        state["redis_server"].remove()
    pg_server = state.get("pg_server")
    if pg_server is None:
        return
    if keep_db:
        print(
            f"PostgreSQL kept: {pg_server.url.rsplit('/', 1)[0]}/{args.db_name}; stop it with"
            f" `runuser -u postgres -- pg_ctl -D {pg_server.data} stop` (or `pg_ctl` as yourself)",
            file=sys.stderr,
        )
    else:
        pg_server.remove()


if __name__ == "__main__":
    sys.exit(main())
