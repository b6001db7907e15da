"""Chaos run: workers SIGKILLed and restarted, the broker flushed, the pump restarted, mid-flight.

    .venv/bin/python bench/chaos.py [--messages 5000] [--spread 60] [--workers 3]

Everything is real and local: PostgreSQL (its own database, `chaos_scheduler`, dropped and created,
then migrated), Redis (its own DB index, 12, flushed at the start and the end), `--workers` x
`celery -A project worker --concurrency 2` and one `manage.py dispatch_pump`, as the Procfile runs
them, with the `http` transport pointed at bench/provider.py (which records every request with its
`Idempotency-Key` and deduplicates nothing, so a double send shows) and the session's webhook URL
pointed at a receiver in this process (which records every `webhook-id`).

`--messages` are scheduled through `services.message_schedule` (in this process, after django.setup()),
due evenly over `--spread` seconds from about `--lead` (10) seconds after they are all written. While
they fall due, a random worker that is up is SIGKILLed (its whole process group, as an OOM kill or a
lost host would) every `--kill-min`..`--kill-max` seconds and started again at once, the broker DB is
flushed once (half-way) and the pump is SIGKILLed and started again once (a third of the way).
`--campaign` (1000) more messages are all due at one instant, 40 % of the way: stored as rows beyond
the horizon, so the pump hands them over in batches (one task claims up to DISPATCH_SEND_BATCH). Then
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

Recovery timings are shortened (RECOVERY_ENV below; `--stale-after`, `--lease`) so that a killed
worker's messages are recovered within seconds instead of the production minutes. Every other
setting is the production default. On 2 shared cores the default run (5,000 in 60 s plus the
campaign) falls behind under this chaos and settles about 30 s after the last due time: about 2 minutes
in all (126 s on 2026-11-22).

Exits 1 on any lost message, missing webhook or unexplained duplicate. Process logs go to
`--out`/logs (bench/results/chaos/logs). The database is dropped after a clean run and kept
after a failed one (`--keep-db` keeps it always), for a look at the messages' history.
"""

import argparse
import asyncio
import atexit
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import (ROOT, Child, Provider, celery_worker, create_database, dispatch_pump, release_scratch,
                    run_exclusively, take_request)

sys.path.insert(0, str(ROOT))

TO = "15550001234"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="messages to schedule")
    parser.add_argument("--spread", type=float, default=60.0, help="seconds over which they fall due")
    parser.add_argument("--campaign", type=int, default=1000,
                        help="more messages, all due at one instant mid-run (stored rows the pump hands over in batches)")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (each --concurrency 2)")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--lead", type=float, default=10.0, help="the first is due this long after all are written")
    parser.add_argument("--kill-min", type=float, default=4.0, help="shortest pause between two worker kills (s)")
    parser.add_argument("--kill-max", type=float, default=8.0, help="longest pause between two worker kills (s)")
    parser.add_argument("--no-flush", action="store_true", help="do not flush the broker")
    parser.add_argument("--no-pump-restart", action="store_true", help="do not restart the pump")
    parser.add_argument("--no-kill", action="store_true", help="do not kill workers (a control run)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="after the last due time, wait at most this long for every message to be final")
    parser.add_argument("--stall", type=float, default=60.0,
                        help="stop waiting earlier when no message or webhook changed state for this long")
    parser.add_argument("--stale-after", type=float, default=5.0, help="DISPATCH_STALE_AFTER_SECONDS (default 60 in production)")
    parser.add_argument("--lease", type=float, default=20.0, help="DISPATCH_LEASE_SECONDS (default 120 in production)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the kill schedule")
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL server URL")
    parser.add_argument("--db-name", default="chaos_scheduler")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server URL")
    parser.add_argument("--redis-db", type=int, default=12, help="the broker DB (flushed)")
    parser.add_argument("--keep-db", action="store_true", help="keep the database after a clean run too")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos"))
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


# --- The webhook receiver (the provider, workers and pump come from bench/common.py) ---------------



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
        receiver = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport, self.buffer = transport, b""

            def data_received(self, data):
                self.buffer += data
                while (request := take_request(self.buffer)) is not None:
                    _, headers, body, self.buffer = request
                    try:
                        payload = json.loads(body or b"{}")
                        receiver.records.append((headers.get("webhook-id", ""), payload.get("event", ""),
                                                 payload.get("scheduledId", ""), time.time()))
                    except ValueError:
                        receiver.errors += 1
                    self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                         b"Content-Length: 2\r\n\r\n{}")
                    if headers.get("connection", "").lower() == "close":
                        self.transport.close()
                        return

        async def serve():
            server = await self.loop.create_server(Protocol, "127.0.0.1", 0, backlog=1024)
            self.port = server.sockets[0].getsockname()[1]
            self.started.set()
            await server.serve_forever()

        self.loop.run_until_complete(serve())


# --- Set-up ---------------------------------------------------------------------------------------



def product_env(args, provider_url):
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "SECRET_KEY": "chaos",
        "DATABASE_URL": f"{args.pg}/{args.db_name}",
        "REDIS_URL": f"{args.redis}/{args.redis_db}",
        "TRANSPORT_URL": provider_url,
        **RECOVERY_ENV,
        "DISPATCH_STALE_AFTER_SECONDS": f"{args.stale_after:g}",
        "DISPATCH_LEASE_SECONDS": f"{args.lease:g}",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


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
        return celery_worker(f"w{slot + 1}-{self.generation[slot]}", "project", self.env, self.log_dir, self.args.concurrency)

    def start(self):
        for child in [*self.workers, self.pump]:
            child.start()
        for child in [*self.workers, self.pump]:
            child.wait_ready(90)

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
        self.events.append((time.time(), f"SIGKILL {victim.name}{'' if was_ready else ' (none was up: killed one still starting)'};"
                                         f" started {self.workers[slot].name}"))

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
        message = services.message_schedule(session=session, scheduled_at=datetime.fromtimestamp(due, UTC),
                                            to=TO, text=f"chaos {i}")
        ids[message.id] = due
    return ids


def store_campaign(session, due, count):
    """Rows as message_schedule stores messages due beyond the horizon, so the pump hands them over,
    in batches since they share their due time: how a campaign scheduled days ahead goes out."""
    from scheduling.models import ScheduledMessage

    at = datetime.fromtimestamp(due, UTC)
    rows = [ScheduledMessage(session=session, to=TO, text=f"campaign {i}", scheduled_at=at, due_at=at) for i in range(count)]
    ScheduledMessage.objects.bulk_create(rows, batch_size=5000)
    return {row.id: due for row in rows}


def calibrate(session, sample=100):
    """Seconds per message_schedule call for a message due within the horizon (so handed to Celery on
    commit, as the run's messages are). The calibration messages are cancelled at once: their tasks,
    due minutes later, find nothing to send."""
    from scheduling import services

    due = datetime.now(UTC) + timedelta(minutes=4)
    started = time.perf_counter()
    messages = [services.message_schedule(session=session, scheduled_at=due, to=TO, text=f"calibration {i}")
                for i in range(sample)]
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
    import redis

    rng = random.Random(args.seed)
    out = Path(args.out)
    log_dir = out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    broker = redis.Redis.from_url(f"{args.redis}/{args.redis_db}")
    broker.flushdb()

    provider = Provider(log_dir)
    receiver = WebhookReceiver()
    env = product_env(args, provider.url)
    print(f"database {args.db_name}: create and migrate; broker {args.redis}/{args.redis_db}; logs in {log_dir}", flush=True)
    create_database(args.pg, args.db_name)
    state["db_created"] = True
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update({key: env[key] for key in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "REDIS_URL",
                                                 "TRANSPORT_URL", *RECOVERY_ENV)})
    state["settings"] = {key: env[key] for key in RECOVERY_ENV}
    import django

    django.setup()
    from scheduling import services

    session = services.session_create(name="chaos", webhook_url=receiver.url).session
    calibration = services.session_create(name="chaos-calibration").session

    print(f"starting {args.workers} worker(s) x concurrency {args.concurrency} and the pump", flush=True)
    fleet = Fleet(args, env, log_dir)
    state["fleet"] = fleet
    fleet.start()

    per_message = calibrate(calibration)
    write_s = per_message * args.messages * 1.15 + 1.0  # with a margin: the machine is shared
    created_at = time.time()
    first_due = created_at + write_s + args.lead
    last_due = first_due + args.spread
    print(f"scheduling {args.messages} messages due over {args.spread:g} s from {first_due - created_at:.1f} s on"
          f" ({per_message * 1000:.2f} ms per message_schedule measured)", flush=True)
    due_by_id = schedule_messages(session, first_due, args.spread, args.messages)
    if args.campaign:
        campaign_due = first_due + args.spread * 0.4  # after the pump restart, before the flush
        due_by_id.update(store_campaign(session, campaign_due, args.campaign))
        print(f"campaign: {args.campaign} more messages due together {campaign_due - first_due:+.1f} s after the first",
              flush=True)
    written = time.time()
    state.update(session=session, due_by_id=due_by_id, provider=provider, receiver=receiver,
                 write_s=written - created_at, lead_after_written_s=first_due - written)
    print(f"written in {written - created_at:.1f} s; first due {first_due - written:.1f} s later", flush=True)

    # Chaos from a few seconds before the first due time to the last one (from now, if writing overran).
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
    plan.sort()
    for at, action in plan:
        time.sleep(max(0.0, at - time.time()))
        if action == "kill":
            fleet.kill_random_worker(rng)
        elif action == "pump":
            fleet.restart_pump()
        else:
            keys = broker.dbsize()
            broker.flushdb()
            state["flushes"] = state.get("flushes", 0) + 1
            fleet.events.append((time.time(), f"FLUSHDB of the broker ({keys} keys)"))
        print(f"  t={time.time() - first_due:+6.1f} s  {fleet.events[-1][1]}", flush=True)
    time.sleep(max(0.0, last_due - time.time()))
    print(f"last message due; waiting (at most {args.timeout:g} s) for every message to be final", flush=True)

    deadline, previous, progress_at = last_due + args.timeout, None, time.time()
    state["timed_out"] = state["stalled"] = False
    while True:
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
    time.sleep(1.0)  # let the last requests' records land


def check(args, state):
    """Compare the provider's record, the webhook receiver's and the database. Returns (line, details, ok)."""
    from scheduling.models import MessageEvent, ScheduledMessage, WebhookDelivery

    session, due_by_id = state["session"], state["due_by_id"]
    records = [(record[0], record[1]) for record in state["provider"].records()]
    provider_keys = Counter(key for key, _ in records)
    first_arrival = {}
    for key, arrived in records:
        first_arrival.setdefault(key, arrived)
    lateness = sorted(first_arrival[key] - due for key, due in due_by_id.items() if key in first_arrival)
    messages = {row[0]: row[1:] for row in ScheduledMessage.objects.filter(session=session)
                .values_list("id", "status", "last_error", "attempts")}
    events = MessageEvent.objects.filter(message__session=session)
    lease_recoveries = Counter(events.filter(actor="pump", detail__startswith="lease expired")
                               .values_list("message_id", flat=True))
    temporary_retries = Counter(events.filter(detail__startswith="temporary error").values_list("message_id", flat=True))
    rehanded = events.filter(actor="pump", detail__contains="presumed lost").count()

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
    lost_count = sum(len(ids) for ids in lost.values())

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
    strangers = sum(n for key, n in provider_keys.items() if key not in due_by_id)

    receiver = state["receiver"]
    webhook_ids = {record[0] for record in receiver.records}
    redelivered = sum(1 for n in Counter(record[0] for record in receiver.records).values() if n > 1)
    got_event = defaultdict(set)  # (scheduledId, event) -> webhook ids
    for webhook_id, event, scheduled_id, _ in receiver.records:
        got_event[(scheduled_id, event)].add(webhook_id)
    expected_event = {"sent": "message.sent", "failed": "message.failed", "cancelled": "message.cancelled"}
    missing = [mid for mid in due_by_id if messages[mid][0] in expected_event
               and not got_event.get((mid, expected_event[messages[mid][0]]))]
    repeated_events = [key for key, ids in got_event.items() if len(ids) > 1]
    delivery_status = Counter(WebhookDelivery.objects.filter(session=session).values_list("status", flat=True))

    line = (f"{len(due_by_id)} scheduled, {len(sent)} sent, {lost_count} lost, {len(duplicated)} duplicated, "
            f"{len(webhook_ids)} webhooks, {len(missing)} missing")
    fleet = state["fleet"]
    details = [
        f"duplicated: {len(by_lease)} resent with the same key after a recorded lease recovery (exactly once at a"
        f" deduplicating provider), {len(by_retry)} after a temporary-error retry, {len(unexplained)} unexplained",
        f"outcome unknown (failed, not resent): {len(outcome_unknown)}; lease recoveries: {sum(lease_recoveries.values())};"
        f" hand-overs re-handed as lost: {rehanded}; requests with keys of no chaos message: {strangers}",
        f"statuses: {dict(status_counts(session))}; webhook deliveries: {dict(delivery_status)};"
        f" webhook ids received more than once: {redelivered}; messages with two events of one kind: {len(repeated_events)}",
        f"chaos: {fleet.kills} worker SIGKILLs, {fleet.worker_restarts} worker restarts, {state.get('flushes', 0)}"
        f" broker flush(es), {fleet.pump_restarts} pump restart(s)",
        f"lateness (first arrival - due): p50 {percentile(lateness, 50):.2f} s, p95 {percentile(lateness, 95):.2f} s,"
        f" p99 {percentile(lateness, 99):.2f} s, max {percentile(lateness, 100):.2f} s, min {percentile(lateness, 0):+.3f} s",
        f"task runs (from the worker logs; a killed worker's last tasks may be missing): {task_runs(Path(args.out) / 'logs')}",
        "settings: " + ", ".join(f"{key}={value}" for key, value in state["settings"].items()),
        f"timing: written in {state['write_s']:.1f} s, first due {state['lead_after_written_s']:.1f} s after;"
        f" settled {state['settled_after_last_due_s']:.1f} s after the last due time"
        + (" (TIMED OUT: --timeout)" if state["timed_out"] else "")
        + (f" (STALLED: no change for --stall {args.stall:g} s)" if state["stalled"] else ""),
    ]
    for reason, ids in lost.items():
        details.append(f"LOST {len(ids)}: {reason}; e.g. {', '.join(ids[:5])}")
    if unexplained:
        details.append("UNEXPLAINED DUPLICATES: " + ", ".join(f"{key} x{duplicated[key]}" for key in unexplained[:10]))
    if missing:
        details.append(f"MISSING WEBHOOKS {len(missing)}: e.g. {', '.join(missing[:5])}")
    if repeated_events:
        details.append("TWO EVENTS OF ONE KIND FOR ONE MESSAGE: " + ", ".join(f"{m} {e}" for m, e in repeated_events[:10]))
    ok = not lost_count and not missing and not unexplained and not repeated_events
    state["report"] = {"line": line, "details": details, "ok": ok, "lost": {k: v for k, v in lost.items()},
                       "duplicated": duplicated, "unexplained": unexplained, "missing": missing,
                       "events": fleet.events}
    return line, details, ok


def percentile(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


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
    (out / "chaos.json").write_text(json.dumps({**state["report"], "wall_s": wall, "args": vars(args)}, indent=2,
                                               default=str))
    if not ok:
        print(f"FAILED; the database {args.db_name} is kept for a look at the messages' history", file=sys.stderr)
        return 1
    return 0


def cleanup(args, state, keep_db):
    drop = bool(state.get("db_created")) and not keep_db
    release_scratch(args.pg, args.db_name, [f"{args.redis}/{args.redis_db}"], drop_db=drop)


if __name__ == "__main__":
    sys.exit(main())
