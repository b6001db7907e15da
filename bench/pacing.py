"""Pacing benchmark: a session at its send rate and a transport at its rate, held fleet-wide by several
workers, beside an unpaced session due at the same instant, against providers with latency and a rate cap.

    .venv/bin/python bench/pacing.py [--workers 3] [--session-rate 20] [--transport-rate 50] [--latency-ms 200]

Three sessions, all due at one instant (created through `services.message_schedule` beforehand):
- "session-paced": --session-rate per second (Session.send_rate), on the unpaced default transport;
- "transport-paced": an unpaced session on the `sms` transport, SMS_TRANSPORT_RATE = --transport-rate;
  its provider answers 429 beyond --cap-factor x that rate in any sliding second;
- "unpaced": --unpaced messages on the default transport, first alone (the control), then with the others.

Per paced stream: the most arrivals in any 1 s sliding window, the mean rate, the provider's 429s; for the
unpaced session: its drain time alone and beside the paced ones. Writes <out>/pacing.json; exits 1 if a
message was lost or a window went past its rate + 5 %.
"""

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from fleet import Provider, celery_worker, dispatch_pump, logs_dir, start_all
from options import add_result_options, add_scratch_options, runner_parser
from product import ROOT, child_env, setup_django
from runs import machine_facts, run_exclusively, run_record
from scratch import fresh_database, release_scratch, scratch_redis

sys.path.insert(0, str(ROOT))
TO = "15550001234"


def options_parser():
    parser = runner_parser(__doc__)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="pool processes per worker (as the Procfile)")
    parser.add_argument("--session-rate", type=float, default=20.0, help="the paced session's rate, per second")
    parser.add_argument("--transport-rate", type=float, default=50.0, help="the paced transport's rate, per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="each paced stream is this long at its rate")
    parser.add_argument("--unpaced", type=int, default=1000, help="messages of the unpaced session")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="both providers answer this much later")
    parser.add_argument("--cap-factor", type=float, default=1.1, help="the sms provider's 429 cap / transport rate")
    parser.add_argument("--lead", type=float, default=20.0, help="the instant is this long after creation starts")
    add_scratch_options(parser, db_name="bench_pacing", redis_db=10, redis_db_help="the product's broker DB (flushed)")
    add_result_options(parser, out=ROOT / "bench" / "results")
    return parser


def most_in_one_second(times):
    times, best, end = sorted(times), 0, 0
    for start_index, start in enumerate(times):
        while end < len(times) and times[end] < start + 1.0:
            end += 1
        best = max(best, end - start_index)
    return best


def stream_figures(provider, mark, ids, due, rate=None):
    arrivals = provider.deliveries(mark, set(ids))
    first = sorted(times[0] for times in arrivals.values())
    figures = {
        "messages": len(ids),
        "arrived": len(arrivals),
        "lost": len(ids) - len(arrivals),
        "duplicated": sum(len(times) - 1 for times in arrivals.values()),
        "early": sum(1 for t in first if t < due),
        "drain_s": (first[-1] - due) if first else None,
    }
    if rate and len(first) > 1:
        figures["rate_per_s"] = rate
        figures["max_in_1s_window"] = most_in_one_second(first)
        figures["mean_rate_per_s"] = (len(first) - 1) / (first[-1] - first[0])
        figures["window_within_5pct"] = figures["max_in_1s_window"] <= rate * 1.05 + 1e-9
        figures["mean_within_5pct"] = abs(figures["mean_rate_per_s"] - rate) <= rate * 0.05
    return figures


def schedule(session, count, due, label):
    from scheduling import services

    at = datetime.fromtimestamp(due, UTC)
    return [
        services.message_schedule(session=session, scheduled_at=at, to=TO, text=f"{label} {i}").id for i in range(count)
    ]


def wait_until_settled(ids, timeout):
    from scheduling.models import MessageStatus, ScheduledMessage

    deadline = time.time() + timeout
    while time.time() < deadline:
        left = ScheduledMessage.objects.filter(pk__in=ids, status__in=[MessageStatus.PENDING, MessageStatus.SENDING])
        if not left.exists():
            return
        time.sleep(0.5)


def run_phase(args, providers, sessions, with_paced):
    marks = {name: provider.count() for name, provider in providers.items()}
    refused_before = providers["sms"].refused()
    due = time.time() + args.lead
    ids = {"unpaced": schedule(sessions["unpaced"], args.unpaced, due, "unpaced")}
    if with_paced:
        ids["session-paced"] = schedule(
            sessions["session-paced"], round(args.session_rate * args.seconds), due, "session-paced"
        )
        ids["transport-paced"] = schedule(
            sessions["transport-paced"], round(args.transport_rate * args.seconds), due, "transport-paced"
        )
    created = time.time()
    time.sleep(max(0.0, due - time.time()))
    wait_until_settled([i for group in ids.values() for i in group], timeout=args.seconds * 3 + 60)
    time.sleep(1.0)
    figures = {
        "created_before_due": created < due,
        "unpaced": stream_figures(providers["default"], marks["default"], ids["unpaced"], due),
    }
    if with_paced:
        figures["session-paced"] = stream_figures(
            providers["default"], marks["default"], ids["session-paced"], due, args.session_rate
        )
        figures["transport-paced"] = stream_figures(
            providers["sms"], marks["sms"], ids["transport-paced"], due, args.transport_rate
        )
        figures["transport-paced"]["provider_429s"] = providers["sms"].refused() - refused_before
    return figures


def run(args, results):
    log_dir = logs_dir(args.out)
    scratch_redis(args.redis, args.redis_db)
    providers = {
        "default": Provider(log_dir, args.latency_ms),
        "sms": Provider(log_dir, args.latency_ms, round(args.transport_rate * args.cap_factor)),
    }
    settings = {
        "DJANGO_SETTINGS_MODULE": args.settings,
        "SECRET_KEY": "bench",
        "DATABASE_URL": f"{args.pg}/{args.db_name}",
        "REDIS_URL": f"{args.redis}/{args.redis_db}",
        "TRANSPORT_URL": providers["default"].url,
        "SMS_TRANSPORT_URL": providers["sms"].url,
        "SMS_TRANSPORT_RATE": f"{args.transport_rate:g}/s",
    }
    env = child_env(settings)
    fresh_database(args.pg, args.db_name, env)
    setup_django(settings)
    results.update(machine_facts(settings["REDIS_URL"]))
    from scheduling import services

    sessions = {
        "session-paced": services.session_create(name="session-paced", send_rate=f"{args.session_rate:g}/s").session,
        "transport-paced": services.session_create(name="transport-paced", transport="sms").session,
        "unpaced": services.session_create(name="unpaced").session,
    }
    workers = [celery_worker(f"w{i + 1}", "project", env, log_dir, args.concurrency) for i in range(args.workers)]
    start_all([*workers, dispatch_pump(env, log_dir)])
    print("phase 1: the unpaced session alone", flush=True)
    results["alone"] = run_phase(args, providers, sessions, with_paced=False)
    print("phase 2: the unpaced session beside a paced session and a paced transport", flush=True)
    results["together"] = run_phase(args, providers, sessions, with_paced=True)


def report(results):
    alone, together = results["alone"], results["together"]
    lines = [
        f"unpaced drain: alone {alone['unpaced']['drain_s']:.2f} s, "
        f"beside the paced {together['unpaced']['drain_s']:.2f} s"
    ]
    for name in ("session-paced", "transport-paced"):
        figures = together[name]
        lines.append(
            f"{name}: rate {figures['rate_per_s']:g}/s, most in a 1 s window {figures['max_in_1s_window']}, mean "
            f"{figures['mean_rate_per_s']:.2f}/s, lost {figures['lost']}, duplicated {figures['duplicated']}, early "
            f"{figures['early']}"
            + (f", provider 429s {figures['provider_429s']}" if "provider_429s" in figures else "")
        )
    return "\n".join(lines)


def failures(results):
    together = results["together"]
    streams = [
        results["alone"]["unpaced"],
        *(together[name] for name in ("unpaced", "session-paced", "transport-paced")),
    ]
    bad = [f"{s['lost']} lost, {s['duplicated']} duplicated" for s in streams if s["lost"] or s["duplicated"]]
    bad += [
        f"{name}: a window past its rate + 5 %"
        for name in ("session-paced", "transport-paced")
        if not together[name]["window_within_5pct"]
    ]
    return bad


def main(argv=None):
    args = options_parser().parse_args(argv)
    results = run_record(args)

    def body():
        run(args, results)

    def cleanup():
        release_scratch(args.pg, args.db_name, [f"{args.redis}/{args.redis_db}"], drop_db=not args.keep_db)

    if not run_exclusively("pacing", body, cleanup):
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pacing.json").write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    print(f"\n{results['command']}\nresults in {out / 'pacing.json'}")
    problems = failures(results)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
