"""API load benchmark: requests/s and latency of create, list, cancel and omnimessage create under
concurrent load from a separate process (locust, headless) against gunicorn, plus a page-size and a
concurrency sweep.

    .venv/bin/python bench/api.py [--duration 20] [--users 8] [--gunicorn-workers 2] [--seed-rows 10000]
                                  [--list-limits 10,100,500] [--create-users 1,8,32] [--out bench/results] [--quick]

One run, on one machine: its own PostgreSQL database (migrated), its own Redis DB, one session made with
`manage.py create_session bench --transport console`, `gunicorn project.wsgi --workers N` as the Procfile
runs it (no Celery worker and no pump: every message is a day ahead, beyond the dispatch horizon, so it is
only a row), and locust in its own process for each scenario:

    create   POST   /sessions/{id}/scheduled                  one text message a day ahead
    list     GET    /sessions/{id}/scheduled?limit=N          over --seed-rows rows, following `next`
    cancel   DELETE /sessions/{id}/scheduled/{scheduledId}    each of a set of pending messages once
    omni     POST   /v1/omnimessage                           sms → viber → whatsapp, basic auth
    bulk     POST   /v1/omnimessages                          N such omnimessages per request (the bulk sweep)

Sweeps: the list page size (`limit`, at most API_MAX_PAGE_SIZE = 500), the number of concurrent creators,
and the bulk size of Messente's POST /v1/omnimessages (omnimessages per request, at most OMNIMESSAGE_BULK_MAX).

Prints a table and writes <out>/api.json, <out>/api_scenarios.png and <out>/api_sweeps.png; exits 1 if any
request failed (any answer outside 2xx). See bench/README.md.
"""

import http.client
import json
import math
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet import Child, logs_dir
from options import add_result_options, add_scratch_options, runner_parser
from procfs import tree_cpu_seconds, tree_rss_mb
from product import ROOT, child_env, setup_django
from runs import machine_facts, run_exclusively, run_record
from scratch import fresh_database, release_scratch, scratch_redis
from stats import percentile

sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402

QUICK = {
    "duration": 3.0,
    "users": 4,
    "seed_rows": 1000,
    "list_limits": "10,100",
    "create_users": "1,4",
    "bulk_sizes": "1,10",
}
DEFAULTS = {
    "duration": 20.0,
    "users": 8,
    "seed_rows": 10_000,
    "list_limits": "10,100,500",
    "create_users": "1,8,32",
    "bulk_sizes": "1,10,100,500",
}


def parse_args(argv=None):
    args = options_parser().parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.list_limits = sorted({int(v) for v in str(args.list_limits).split(",") if v.strip()})
    args.create_users = sorted({int(v) for v in str(args.create_users).split(",") if v.strip()})
    args.bulk_sizes = sorted({int(v) for v in str(args.bulk_sizes).split(",") if v.strip()})
    return args


def options_parser():
    parser = runner_parser(__doc__)
    parser.add_argument("--duration", type=float, help=f"seconds of load per run (default {DEFAULTS['duration']:g})")
    parser.add_argument(
        "--users", type=int, help=f"concurrent locust users of the four scenarios (default {DEFAULTS['users']})"
    )
    parser.add_argument(
        "--list-limit", type=int, default=100, help="page size of the list scenario (the API's default)"
    )
    parser.add_argument("--list-limits", help=f"page sizes of the list sweep (default {DEFAULTS['list_limits']})")
    parser.add_argument(
        "--create-users", help=f"concurrent users of the create sweep (default {DEFAULTS['create_users']})"
    )
    parser.add_argument(
        "--bulk-sizes",
        help=f"omnimessages per POST /v1/omnimessages in the bulk sweep (default {DEFAULTS['bulk_sizes']})",
    )
    parser.add_argument(
        "--seed-rows", type=int, help=f"messages present for the list runs (default {DEFAULTS['seed_rows']})"
    )
    parser.add_argument(
        "--cancel-rows",
        type=int,
        default=None,
        help="pending messages written for the cancel run"
        " (default: 2 × the best create rate × --duration, at least 2000)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="requests of each kind sent before measuring")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: "
        + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items())
        + " (explicit options win)",
    )
    parser.add_argument(
        "--gunicorn-workers", type=int, default=2, help="gunicorn --workers (the Procfile's WEB_CONCURRENCY default)"
    )
    parser.add_argument(
        "--gunicorn-threads", type=int, default=1, help="gunicorn --threads (1: the sync worker, as in the Procfile)"
    )
    add_scratch_options(
        parser,
        db_name="bench_api",
        redis_db=9,
        redis_db_help="the product's broker DB (flushed at the start and the end)",
    )
    add_result_options(parser, out=ROOT / "bench" / "results")
    return parser


# --- Processes ------------------------------------------------------------------------------------


def product_settings(args):
    """The settings the product runs with (the production defaults otherwise): gunicorn's and this process's."""
    return {
        "DJANGO_SETTINGS_MODULE": args.settings,
        "SECRET_KEY": "bench",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"{args.pg}/{args.db_name}",
        "REDIS_URL": f"{args.redis}/{args.redis_db}",
        "TRANSPORT_URL": "console:",
        # The benchmark measures the API, not its rate limit (100/min per key by default): off.
        "API_RATE_LIMIT": "0",
    }


def gunicorn(args, env, log_dir, port):
    # The Procfile's web process, bound to loopback on a free port (its access log too).
    argv = [
        str(Path(sys.executable).parent / "gunicorn"),
        "project.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(args.gunicorn_workers),
        "--no-control-socket",
        "--access-logfile",
        "-",
        "--access-logformat",
        '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    ]  # no user field: it held the key
    if args.gunicorn_threads > 1:
        argv += ["--threads", str(args.gunicorn_threads)]
    return Child("gunicorn", argv, env, log_dir, ready="Listening at")


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(
            method,
            path,
            body=data,
            headers={"Content-Type": "application/json", "X-Forwarded-Proto": "https", **(headers or {})},
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_serving(port, timeout=60.0):
    deadline = time.time() + timeout
    while True:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                return
        except OSError:
            pass
        if time.time() > deadline:
            raise RuntimeError("gunicorn does not answer /healthz")
        time.sleep(0.2)


# --- Set-up ---------------------------------------------------------------------------------------


def when(days=1.0):
    return (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seed(session_id, count, label, start_days=1.0, batch=5000):
    """Pending messages as message_schedule stores one due beyond the horizon (the "scheduled" history
    row aside), spread over an hour from `start_days` ahead. Returns their ids in scheduled order."""
    from scheduling.models import ScheduledMessage, Session

    session = Session.objects.get(pk=session_id)
    start = datetime.now(UTC) + timedelta(days=start_days)
    step = 3600.0 / max(count, 1)
    rows = [
        ScheduledMessage(
            session=session,
            to="919988066776",
            text=f"{label} {i}",
            scheduled_at=start + timedelta(seconds=i * step),
            due_at=start + timedelta(seconds=i * step),
            handed_over_at=None,
            task_id="",
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    ScheduledMessage.objects.bulk_create(rows, batch_size=batch)
    return [row.id for row in rows], time.perf_counter() - started


def message_count(session_id, status=None):
    from scheduling.models import ScheduledMessage

    rows = ScheduledMessage.objects.filter(session_id=session_id)
    return rows.filter(status=status).count() if status else rows.count()


def warm_up(port, credentials, n):
    """A few requests of each kind through every worker before anything is timed (lazy imports, first
    connections); their answers must be 2xx too."""
    key = {"X-API-Key": credentials["apiKey"]}
    import base64

    basic = {
        "Authorization": "Basic "
        + base64.b64encode(f"{credentials['apiUsername']}:{credentials['apiPassword']}".encode()).decode()
    }
    base = f"/sessions/{credentials['id']}/scheduled"
    bad = []
    for i in range(n):
        for method, path, body, headers in (
            ("POST", base, {"to": "919988066776", "text": f"warm-up {i}", "scheduledAt": when()}, key),
            ("GET", f"{base}?limit=10", None, key),
            (
                "POST",
                "/v1/omnimessage",
                {
                    "to": "+37255555555",
                    "time_to_send": when(),
                    "messages": [{"channel": "sms", "text": f"warm-up {i}"}],
                },
                basic,
            ),
        ):
            status, answer = request(port, method, path, body, headers)
            if not 200 <= status < 300:
                bad.append(
                    {"request": f"{method} {path}", "status": status, "body": answer[:300].decode(errors="replace")}
                )
    return bad


# --- Measuring ------------------------------------------------------------------------------------


def summarise(records, error_samples):
    """Figures of one locust run from its request records: (name, start s, latency ms, status, ok)."""
    if not records:
        return {"requests": 0, "failures": 0, "rps": 0.0, "status_counts": {}, "error_samples": error_samples}
    latencies = sorted(r[2] for r in records)
    first = min(r[1] for r in records)
    last = max(r[1] + r[2] / 1000 for r in records)
    statuses = {}
    for r in records:
        statuses[str(r[3])] = statuses.get(str(r[3]), 0) + 1
    failures = sum(1 for r in records if not r[4])
    window = max(last - first, 1e-9)
    return {
        "requests": len(records),
        "failures": failures,
        "non_2xx": sum(1 for r in records if not 200 <= r[3] < 300),
        "server_errors_5xx": sum(1 for r in records if 500 <= r[3] < 600),
        "connection_errors": sum(1 for r in records if r[3] == 0),
        "status_counts": statuses,
        "window_s": round(window, 3),
        "rps": len(records) / window,
        "ok_rps": (len(records) - failures) / window,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p90_ms": round(percentile(latencies, 90), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(latencies[-1], 1),
        "mean_ms": round(sum(latencies) / len(latencies), 1),
        "error_samples": error_samples,
    }


def run_locust(args, ctx, label, user_class, users, extra=()):
    """One headless locust run in its own process; the figures come from its request records."""
    out = Path(args.out) / "locust"
    out.mkdir(parents=True, exist_ok=True)
    records_file = out / f"{label}.records.json"
    records_file.unlink(missing_ok=True)
    argv = [*locust_argv(args, ctx, users, out / label, records_file), *extra, user_class]
    locust = Child(f"locust-{label}", argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, Path(args.out) / "logs")
    server = ctx["gunicorn"].pid
    cpu_server, rusage, load = (
        tree_cpu_seconds(server),
        resource.getrusage(resource.RUSAGE_CHILDREN),
        os.getloadavg()[0],
    )
    started = time.time()
    locust.start()
    try:
        code = locust.popen.wait(timeout=args.duration + 120)
    except subprocess.TimeoutExpired:
        locust.kill()
        raise RuntimeError(f"locust {label} did not finish; see {locust.log}") from None
    elapsed = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    Child.running.remove(locust)
    if code != 0 or not records_file.exists():
        raise RuntimeError(f"locust {label} exited {code} (see {locust.log}):\n{locust.tail()}")
    data = json.loads(records_file.read_text())
    result = summarise(data["records"], data["error_samples"])
    result.update(
        {
            "users": users,
            "locust_exit_code": code,
            "wall_s": round(elapsed, 1),
            "loadavg_1m_before": load,
            "server_cpu_s": round(tree_cpu_seconds(server) - cpu_server, 2),
            "server_cpu_ms_per_request": round(
                (tree_cpu_seconds(server) - cpu_server) * 1000 / max(len(data["records"]), 1), 2
            ),
            "client_cpu_s": round(after.ru_utime + after.ru_stime - rusage.ru_utime - rusage.ru_stime, 2),
            "server_rss_mb": round(tree_rss_mb(server), 1),
            "ids_left": data.get("ids_left"),
            "ran_out_of_ids": data.get("exhausted", {}).get("cancel_ids", False),
            "locust_csv": str(out / f"{label}_stats.csv"),
            "locust_log": str(locust.log),
        }
    )
    records_file.unlink()  # large; the figures above and locust's CSV stay
    print(
        f"  {label:<18} {result['rps']:8.1f} req/s  p50 {result.get('p50_ms')} ms  p99 {result.get('p99_ms')} ms  "
        f"failures {result['failures']}/{result['requests']}",
        flush=True,
    )
    return result


def locust_argv(args, ctx, users, csv_prefix, records_file):
    """locust headless, each user a closed loop for --duration, with the session's credentials."""
    credentials = ctx["credentials"]
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "bench" / "locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{max(1, round(args.duration))}s",
        "--stop-timeout",
        "10",
        "--host",
        ctx["host"],
        "--csv",
        str(csv_prefix),
        "--exit-code-on-error",
        "0",
        "--only-summary",
        "--session-id",
        credentials["id"],
        "--api-key",
        credentials["apiKey"],
        "--api-username",
        credentials["apiUsername"],
        "--api-password",
        credentials["apiPassword"],
        "--results-file",
        str(records_file),
    ]


# --- Report ---------------------------------------------------------------------------------------


def machine_and_versions(args):
    from importlib.metadata import version

    import django
    import psycopg
    import redis
    import rest_framework
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW max_connections")
        pg_max_connections = cursor.fetchone()[0]
    facts = machine_facts(args.redis)
    facts["versions"].update(
        {
            "django": django.get_version(),
            "djangorestframework": rest_framework.VERSION,
            "gunicorn": version("gunicorn"),
            "locust": version("locust"),
            "gevent": version("gevent"),
            "psycopg": psycopg.__version__,
            "redis_py": redis.__version__,
            "postgresql_max_connections": pg_max_connections,
        }
    )
    return facts


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def table(results):
    rows = [
        (
            "run",
            "users",
            "requests",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "failures",
            "srv CPU ms/req",
            "load",
            "statuses",
        )
    ]

    def row(label, r, extra=""):
        statuses = " ".join(f"{k}×{v}" for k, v in sorted(r["status_counts"].items()))
        rows.append(
            (
                label + extra,
                str(r["users"]),
                str(r["requests"]),
                fmt(r["rps"]),
                fmt(r.get("p50_ms")),
                fmt(r.get("p99_ms")),
                fmt(r.get("max_ms")),
                str(r["failures"]),
                fmt(r.get("server_cpu_ms_per_request")),
                fmt(r["loadavg_1m_before"]),
                statuses,
            )
        )

    s = results["scenarios"]
    row("create", s["create"])
    row(f"list limit={s['list']['limit']}", s["list"], f" ({s['list']['rows_present']} rows)")
    row("cancel", s["cancel"], " (ran out of ids)" if s["cancel"]["ran_out_of_ids"] else "")
    row("omnimessage create", s["omni"])
    for r in results["sweeps"]["list_limit"]:
        row(f"sweep list limit={r['limit']}", r, f" ({fmt(r['rows_per_s'], 0)} msgs/s)")
    for r in results["sweeps"]["create_users"]:
        row(f"sweep create users={r['users']}", r)
    for r in results["sweeps"]["bulk_size"]:
        row(f"sweep bulk omnimessages x{r['bulk_size']}", r, f" ({fmt(r['omnimessages_per_s'], 0)} omnimsgs/s)")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, len(widths) - 1) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    m = results["machine"]
    lines.append("")
    lines.append(
        f"gunicorn --workers {results['args']['gunicorn_workers']} --threads {results['args']['gunicorn_threads']}; "
        f"locust in its own process on the same {m['usable_cpus']} CPU(s), {m['memory_total_mb']} MB; "
        f"{results['args']['duration']:g} s per run; latencies are locust's (client side); srv CPU = gunicorn "
        "master + workers (PostgreSQL not included); load = 1-minute load average before the run"
    )
    return "\n".join(lines)


def charts(results, out):
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    return [
        save(scenarios_chart(results), out / "api_scenarios.png"),
        save(sweeps_chart(results), out / "api_sweeps.png"),
    ]


def save(fig, path):
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scenarios_chart(results):
    """Throughput and latency of the four scenarios."""
    import matplotlib.pyplot as plt

    s = results["scenarios"]
    names = ["create", "list", "cancel", "omni"]
    labels = ["create\nPOST scheduled", f"list\nlimit={s['list']['limit']}", "cancel\nDELETE", "omnimessage\nPOST /v1"]
    users = results["args"]["users"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bars = left.bar(labels, [s[n]["rps"] for n in names], color="#4C72B0")
    left.bar_label(bars, fmt="%.0f")
    left.set_ylabel("requests/s")
    left.set_title(f"Throughput ({users} users, {results['args']['gunicorn_workers']} gunicorn workers)")
    x = range(len(names))
    width = 0.38
    p50 = right.bar(
        [i - width / 2 for i in x], [s[n].get("p50_ms") or 0 for n in names], width, label="p50", color="#55A868"
    )
    p99 = right.bar(
        [i + width / 2 for i in x], [s[n].get("p99_ms") or 0 for n in names], width, label="p99", color="#C44E52"
    )
    right.bar_label(p50, fmt="%.0f", fontsize=8)
    right.bar_label(p99, fmt="%.0f", fontsize=8)
    right.set_xticks(list(x), labels)
    right.set_ylabel("latency, ms")
    right.set_title("Latency (client side)")
    right.legend()
    if any(s[n]["failures"] for n in names):
        left.text(
            0.02,
            0.95,
            "failures: " + ", ".join(f"{n} {s[n]['failures']}" for n in names),
            transform=left.transAxes,
            color="red",
            va="top",
            fontsize=8,
        )
    fig.suptitle(
        f"API under load — {results['started_at'][:16]}Z, {results['machine']['usable_cpus']} CPUs", fontsize=10
    )
    return fig


def sweeps_chart(results):
    """The list page-size sweep (requests and messages per second), the create concurrency sweep, the bulk sweep."""
    import matplotlib.pyplot as plt

    sweeps, users = results["sweeps"], results["args"]["users"]
    fig, (left, middle, right, bulk) = plt.subplots(1, 4, figsize=(19, 4.2))
    plot_sweep(left, sweeps["list_limit"], "limit", "page size (limit)", f"List: requests, {users} users")
    plot_sweep(right, sweeps["create_users"], "users", "concurrent users", "Create: one message per request")
    xs = [r["limit"] for r in sweeps["list_limit"]]
    bars = middle.bar([str(x) for x in xs], [r["rows_per_s"] for r in sweeps["list_limit"]], color="#8172B2")
    middle.bar_label(bars, fmt="%.0f")
    middle.set_xlabel("page size (limit)")
    middle.set_ylabel("messages listed per second")
    middle.set_title(f"List: messages/s, {users} users")
    if sweeps["bulk_size"]:
        sizes = [str(r["bulk_size"]) for r in sweeps["bulk_size"]]
        bars = bulk.bar(sizes, [r["omnimessages_per_s"] for r in sweeps["bulk_size"]], color="#CCB974")
        bulk.bar_label(bars, fmt="%.0f")
        bulk.set_xlabel("omnimessages per request (POST /v1/omnimessages)")
        bulk.set_ylabel("omnimessages scheduled per second")
        bulk.set_title(f"Bulk create, {users} users")
    fig.suptitle("Sweeps: page size, concurrency, bulk size", fontsize=10)
    return fig


def plot_sweep(axis, series, key, xlabel, title):
    """Requests/s against `key` on a log axis, p50 and p99 on a second axis."""
    xs = [r[key] for r in series]
    axis.plot(xs, [r["rps"] for r in series], "o-", color="#4C72B0", label="requests/s")
    axis.set_xscale("log")
    axis.minorticks_off()
    axis.set_xticks(xs, [str(v) for v in xs])
    axis.set_xlabel(xlabel)
    axis.set_ylabel("requests/s")
    axis.set_ylim(bottom=0, top=max([r["rps"] for r in series] + [1]) * 1.25)
    axis.set_title(title)
    twin = axis.twinx()
    twin.plot(xs, [r.get("p50_ms") or 0 for r in series], "^--", color="#55A868", label="p50 ms")
    twin.plot(xs, [r.get("p99_ms") or 0 for r in series], "v--", color="#C44E52", label="p99 ms")
    twin.set_ylabel("latency, ms")
    twin.set_ylim(bottom=0, top=max([r.get("p99_ms") or 0 for r in series] + [1]) * 1.25)
    handles = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    axis.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8, ncol=3)


# --- The run --------------------------------------------------------------------------------------


def run(args, results):
    log_dir = logs_dir(args.out)
    scratch_redis(args.redis, args.redis_db)
    env, credentials = set_up_product(args, results)
    _, took = seed(credentials["id"], args.seed_rows, "seed")
    results["seed"] = {"rows": args.seed_rows, "bulk_create_s": round(took, 2)}
    print(f"seeded {args.seed_rows} messages in {took:.1f} s", flush=True)

    port = free_port()
    server = gunicorn(args, env, log_dir, port).start().wait_ready(60)
    wait_serving(port)
    ctx = {"host": f"http://127.0.0.1:{port}", "credentials": credentials, "gunicorn": server}
    results["gunicorn_argv"] = server.argv
    results["warmup_failures"] = warm_up(port, credentials, args.warmup)
    scenarios, sweeps = {}, {"list_limit": [], "create_users": [], "bulk_size": []}
    results["scenarios"], results["sweeps"] = scenarios, sweeps
    run_list(
        args, ctx, scenarios, sweeps
    )  # first, over the seeded rows (and the warm-up's): nothing else has written yet
    run_create(args, ctx, scenarios, sweeps)
    print("omnimessage create", flush=True)
    scenarios["omni"] = run_locust(args, ctx, "omni", "OmniCreateUser", args.users)
    run_bulk(args, ctx, sweeps)
    run_cancel(args, ctx, scenarios, sweeps)

    results["messages_at_end"] = message_count(credentials["id"])
    results["server_rss_mb_end"] = round(tree_rss_mb(server.pid), 1)
    results["gunicorn_log_errors"] = log_errors(server.log)
    server.stop()


def set_up_product(args, results):
    """The scratch database, migrated, a session made as an operator would, and the product's code in this
    process; returns gunicorn's environment and the session's credentials."""
    settings = product_settings(args)
    env = child_env(settings)
    fresh_database(args.pg, args.db_name, env)
    made = subprocess.run(
        [sys.executable, "manage.py", "create_session", "bench", "--transport", "console"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    credentials = json.loads(made.stdout.strip().splitlines()[-1])
    setup_django(settings)
    results.update(machine_and_versions(args))
    results["child_env"] = settings
    results["session_id"] = credentials["id"]
    return env, credentials


def run_list(args, ctx, scenarios, sweeps):
    """The list scenario and the page-size sweep, over the messages present."""
    limits = sorted(set(args.list_limits) | {args.list_limit})
    present = message_count(ctx["credentials"]["id"])
    print(f"list: {present} messages present, limits {', '.join(map(str, limits))}, {args.users} users", flush=True)
    for limit in limits:
        r = run_locust(args, ctx, f"list-limit{limit}", "ListUser", args.users, ["--list-limit", str(limit)])
        r.update({"limit": limit, "rows_present": present, "rows_per_s": r["ok_rps"] * min(limit, present)})
        if limit == args.list_limit:
            scenarios["list"] = r
        if limit in args.list_limits:
            sweeps["list_limit"].append(r)


def run_create(args, ctx, scenarios, sweeps):
    """The create scenario and the concurrency sweep."""
    users = sorted(set(args.create_users) | {args.users})
    print(f"create: users {', '.join(map(str, users))}", flush=True)
    for n in users:
        r = run_locust(args, ctx, f"create-users{n}", "CreateUser", n)
        if n == args.users:
            scenarios["create"] = r
        if n in args.create_users:
            sweeps["create_users"].append(r)


def run_bulk(args, ctx, sweeps):
    """The bulk sweep: --bulk-sizes omnimessages per POST /v1/omnimessages."""
    print(f"bulk omnimessages: sizes {', '.join(map(str, args.bulk_sizes))}, {args.users} users", flush=True)
    for size in args.bulk_sizes:
        r = run_locust(args, ctx, f"bulk-size{size}", "OmniBulkUser", args.users, ["--bulk-size", str(size)])
        r.update({"bulk_size": size, "omnimessages_per_s": r["ok_rps"] * size})
        sweeps["bulk_size"].append(r)


def run_cancel(args, ctx, scenarios, sweeps):
    """The cancel scenario, over enough pending messages that the users do not run out (twice the best create rate)."""
    session_id = ctx["credentials"]["id"]
    best = max(r["ok_rps"] for r in [*sweeps["create_users"], scenarios["create"], scenarios["omni"]])
    cancel_rows = args.cancel_rows or max(2000, math.ceil(2 * best * args.duration))
    ids, took = seed(session_id, cancel_rows, "to cancel", start_days=2.0)
    ids_file = Path(args.out) / "locust" / "cancel-ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    print(f"cancel: {cancel_rows} pending messages written in {took:.1f} s", flush=True)
    scenarios["cancel"] = run_locust(args, ctx, "cancel", "CancelUser", args.users, ["--ids-file", str(ids_file)])
    scenarios["cancel"]["rows_written"] = cancel_rows
    scenarios["cancel"]["cancelled_in_db"] = message_count(session_id, "cancelled")
    ids_file.unlink()


def log_errors(log):
    """Lines of gunicorn's log that tell of an error (at most 50, each cut to 400 characters)."""
    words = ("Traceback", "[ERROR]", "[CRITICAL]", "WORKER TIMEOUT", '"level": "ERROR"', "Internal Server Error")
    return [line[:400] for line in log.read_text(errors="replace").splitlines() if any(word in line for word in words)][
        :50
    ]


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    results = run_record(args)
    if not run_exclusively(f"api-{args.db_name}", lambda: run(args, results), lambda: cleanup(args)):
        return 1
    results["elapsed_s"] = round(time.time() - started, 1)
    runs = [*results["scenarios"].values(), *(r for sweep in results["sweeps"].values() for r in sweep)]
    failures = sum(r["failures"] for r in {id(r): r for r in runs}.values()) + len(results["warmup_failures"])
    results["failures_total"] = failures
    results["ok"] = failures == 0 and not results["scenarios"]["cancel"]["ran_out_of_ids"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results["charts"] = [str(p) for p in charts(results, out)]
    (out / "api.json").write_text(json.dumps(results, indent=2, default=str))
    print()
    print(table(results))
    if results["gunicorn_log_errors"]:
        print(f"\ngunicorn log errors ({len(results['gunicorn_log_errors'])}, see {out / 'logs' / 'gunicorn.log'}):")
        print("\n".join(results["gunicorn_log_errors"][:10]))
    print(
        f"\n{results['command']}\ntook {results['elapsed_s']:.0f} s; results in {out / 'api.json'}, "
        + ", ".join(Path(p).name for p in results["charts"])
    )
    if failures:
        print(
            f"FAILED: {failures} request(s) answered outside 2xx or failed (details in api.json: status_counts, "
            "error_samples)",
            file=sys.stderr,
        )
        return 1
    return 0


def cleanup(args):
    release_scratch(args.pg, args.db_name, [f"{args.redis}/{args.redis_db}"], drop_db=not args.keep_db)


if __name__ == "__main__":
    sys.exit(main())
