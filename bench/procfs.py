"""What /proc says about a process and its descendants (a Celery worker's pool, gunicorn's workers)."""

import os
from pathlib import Path

MB = 1024 * 1024


def proc_field(pid, name, file="status"):
    """A `kB` field of /proc/PID/status (or smaps_rollup), in bytes; 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_tree(pid):
    """pid and all its descendants."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_memory(pid):
    """RSS of the main process and of its whole tree (prefork pool children included); PSS beside it."""
    tree = process_tree(pid)
    return {
        "processes": len(tree),
        "main_rss_mb": proc_field(pid, "VmRSS") / MB,
        "tree_rss_mb": sum(proc_field(member, "VmRSS") for member in tree) / MB,
        "tree_pss_mb": sum(proc_field(member, "Pss", "smaps_rollup") for member in tree) / MB,
    }


def tree_rss_mb(pid):
    return sum(proc_field(member, "VmRSS") for member in process_tree(pid)) / MB


def tree_cpu_seconds(pid):
    """utime + stime of a process tree, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return total / ticks
