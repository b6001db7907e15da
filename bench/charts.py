"""Charts of one dispatch benchmark run, written as PNGs next to its dispatch.json.

    .venv/bin/python bench/charts.py bench/results/dispatch.json

- lateness.png: the steady phase's lateness (arrival at the provider - scheduledAt) of this service and
  of each baseline: a histogram and the cumulative distribution, on a symmetric log axis (the plain
  design is a few ms late, RQ can be a second late or early, and 0 must stay visible).
- burst.png: the burst's drain, messages arrived against seconds since their common due time, with raw
  Celery no-op (tasks finished since the first start) as the ceiling.
- pending_memory.png: what one far-future message costs while it waits, in bytes: workers' RSS growth,
  Redis keys, PostgreSQL rows, stacked per system (each system held a different count, so per message).

dispatch.py calls draw() at the end of a run unless --no-charts; matplotlib comes from requirements-bench.txt.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MB = 1024 * 1024
COLORS = {
    "product": "tab:blue",
    "rabbitmq": "tab:purple",
    "celery": "tab:orange",
    "rq": "tab:green",
    "noop": "tab:gray",
}
LABELS = {
    "product": "this service",
    "rabbitmq": "this service, RabbitMQ broker",
    "celery": "plain Celery ETA",
    "rq": "RQ scheduler",
    "noop": "raw Celery no-op",
}


def draw(json_path):
    """Every chart the results allow; returns the paths written."""
    json_path = Path(json_path)
    results = json.loads(json_path.read_text())
    samples = results.get("samples", {})
    written = []
    for name, draw_one, data in (
        ("lateness.png", lateness_chart, samples.get("steady_lateness_ms")),
        ("burst.png", burst_chart, samples.get("burst_offsets_ms")),
        ("pending_memory.png", memory_chart, pending_by_system(results)),
    ):
        if data:
            path = json_path.parent / name
            figure = draw_one(results, data)
            figure.savefig(path, dpi=110)
            plt.close(figure)
            written.append(path)
    return written


def label(name, values=None):
    return f"{LABELS.get(name, name)} (n={len(values)})" if values is not None else LABELS.get(name, name)


def symlog_bins(values, count=60):
    """Bin edges evenly spaced on a symmetric log scale (linear within ±1 ms), to match the axis."""
    forward = lambda x: np.sign(x) * np.log10(1 + np.abs(x))  # noqa: E731
    back = lambda y: np.sign(y) * (10 ** np.abs(y) - 1)  # noqa: E731
    low, high = forward(min(values)), forward(max(values))
    return back(np.linspace(low, high if high > low else low + 1, count))


def lateness_chart(results, by_system):
    late = results.get("lateness", {})
    figure, (hist, cdf) = plt.subplots(1, 2, figsize=(13, 5))
    every = [v for values in by_system.values() for v in values]
    bins = symlog_bins(every)
    for name, values in by_system.items():
        if not values:
            continue
        hist.hist(values, bins=bins, histtype="step", linewidth=1.6, color=COLORS.get(name), label=label(name, values))
        ys = np.arange(1, len(values) + 1) / len(values)
        cdf.step(values, ys, where="post", color=COLORS.get(name), linewidth=1.6, label=label(name, values))
    for axis in (hist, cdf):
        axis.set_xscale("symlog", linthresh=1)
        axis.axvline(0, color="black", linewidth=0.8, linestyle=":")
        axis.set_xlabel("lateness: arrival - scheduledAt (ms, symmetric log scale; < 0 = early)")
        axis.grid(True, alpha=0.3)
        axis.legend(loc="upper left", fontsize=8)
    hist.set_ylabel("messages per bin")
    cdf.set_ylabel("fraction of messages arrived")
    for p in (0.5, 0.99):
        cdf.axhline(p, color="gray", linewidth=0.6, linestyle="--")
    figure.suptitle(
        f"Steady rate: {late.get('rate_per_s', '?'):g}/s for {late.get('duration_s', '?'):g} s, {workers_text(results)}"
    )
    figure.tight_layout()
    return figure


def burst_chart(results, by_system):
    burst, noop = results.get("burst", {}), results.get("noop", {})
    rates = {
        "product": burst.get("drain_per_s"),
        "noop": noop.get("noop_per_s"),
        **{
            name: phases.get("burst", {}).get("drain_per_s")
            for name, phases in {**results.get("brokers", {}), **results.get("baselines", {})}.items()
        },
    }
    figure, axis = plt.subplots(figsize=(10, 5.5))
    for name, values in by_system.items():
        if not values:
            continue
        seconds = np.asarray(values) / 1000
        rate = f", {rates[name]:.0f}/s" if rates.get(name) else ""
        axis.step(
            np.concatenate([[min(0.0, seconds[0])], seconds]),
            np.arange(0, len(seconds) + 1),
            where="post",
            color=COLORS.get(name),
            linewidth=1.8,
            linestyle="--" if name == "noop" else "-",
            label=f"{label(name, values)}{rate}",
        )
    axis.axvline(0, color="black", linewidth=0.8, linestyle=":")
    axis.set_xlabel("seconds since the due time (no-op: since its first task started)")
    axis.set_ylabel("messages arrived")
    axis.grid(True, alpha=0.3)
    axis.legend(loc="lower right", fontsize=9)
    axis.set_title(f"Burst: {burst.get('messages', '?')} messages due at the same instant, {workers_text(results)}")
    figure.tight_layout()
    return figure


def pending_by_system(results):
    """{system: pending phase} for those that ran it."""
    systems = {"product": results.get("pending")}
    systems.update({name: phases.get("pending") for name, phases in results.get("baselines", {}).items()})
    return {name: pending for name, pending in systems.items() if pending}


def memory_chart(results, by_system):
    parts = [
        ("workers' RSS growth", "workers_tree_rss_growth_total_mb", "tab:red"),
        ("Redis keys (MEMORY USAGE)", "redis_db_keys_memory_mb", "tab:purple"),
        ("PostgreSQL table + indexes growth", "postgres_growth_mb", "tab:brown"),
    ]
    names = list(by_system)
    per_message = {
        key: np.array([by_system[n].get(key, 0.0) * MB / by_system[n]["messages"] for n in names])
        for _, key, _ in parts
    }
    shown = {key: np.clip(values, 0, None) for key, values in per_message.items()}  # a process that shrank is noise
    tallest = max(sum(shown.values()).max(), 1.0)
    figure, axis = plt.subplots(figsize=(10, 5.5))
    bottoms = np.zeros(len(names))
    for title, key, color in parts:
        axis.bar([label(n) for n in names], shown[key], bottom=bottoms, color=color, label=title)
        for i, value in enumerate(per_message[key]):
            if shown[key][i] > 0.05 * tallest:  # room for a label inside the segment
                axis.text(
                    i,
                    bottoms[i] + shown[key][i] / 2,
                    f"{value:.0f} B",
                    ha="center",
                    va="center",
                    color="white",
                    fontsize=9,
                )
        bottoms += shown[key]
    for i, name in enumerate(names):
        pending = by_system[name]
        total = sum(pending.get(key, 0.0) for _, key, _ in parts)
        axis.text(
            i,
            bottoms[i],
            f"{bottoms[i]:.0f} B/message\n{total:.1f} MB for {pending['messages']:,}",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    axis.set_ylim(0, tallest * 1.25)
    axis.set_ylabel("bytes per far-future message held")
    axis.legend(loc="upper left", fontsize=9)
    axis.grid(True, axis="y", alpha=0.3)
    axis.set_title(f"Pending: messages due a day ahead, {workers_text(results)}")
    figure.tight_layout()
    return figure


def workers_text(results):
    a = results.get("args", {})
    return f"{a.get('workers', '?')} workers x {a.get('concurrency', '?')} processes"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} path/to/dispatch.json")
    for path in draw(sys.argv[1]):
        print(path)
