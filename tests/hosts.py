"""Another host on a virtual network: a network namespace (`ip netns`) joined to this one by a veth pair,
with a hostname of its own, for tests that put a worker elsewhere and then cut it off. Needs root and
iproute2; `unavailable()` says why not, for a skip. Standard library only.

Names carry the test run's pid, so two runs on one machine never share a namespace, and one left behind by
a run that was killed outright is removed by the next (`remove_left_behind`).
"""

import os
import re
import shutil
import subprocess

PREFIX = "schedh"  # namespaces and links made here are named <PREFIX><pid>[a|b]


def unavailable() -> str:
    """Why this machine cannot make another host ("" when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "unshare") if shutil.which(tool) is None]
    if missing:
        return f"network namespaces need {' and '.join(missing)} (iproute2, util-linux)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"`ip netns` does not work here: {probe.stderr.strip()}"


class OtherHost:
    """Host "b": a namespace whose only link is a veth pair to this host, each end with an address of a /30
    of its own. `cut()` takes the link down (packets are dropped, connections hang as over a broken
    network); `rejoin()` brings it back. `remove()` (always called: use it in a `finally`) deletes both."""

    def __init__(self, hostname: str = "host-b"):
        pid = os.getpid()
        self.hostname = hostname
        self.namespace = f"{PREFIX}{pid}"
        self.link, self.peer_link = f"{PREFIX}{pid}a", f"{PREFIX}{pid}b"
        subnet = f"10.213.{(pid >> 8) & 0xFF}.{pid & 0xFC}"
        base = subnet.rsplit(".", 1)
        self.network = f"{subnet}/30"
        self.address = f"{base[0]}.{int(base[1]) + 1}"  # this host's end: where host b finds our servers
        self.peer_address = f"{base[0]}.{int(base[1]) + 2}"  # host b's own

    def create(self):
        remove_left_behind()
        try:
            _ip("netns", "add", self.namespace)
            _ip("link", "add", self.link, "type", "veth", "peer", "name", self.peer_link)
            _ip("link", "set", self.peer_link, "netns", self.namespace)
            _ip("addr", "add", f"{self.address}/30", "dev", self.link)
            _ip("link", "set", self.link, "up")
            for command in (
                ("addr", "add", f"{self.peer_address}/30", "dev", self.peer_link),
                ("link", "set", self.peer_link, "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("netns", "exec", self.namespace, "ip", *command)
        except Exception:
            self.remove()
            raise
        return self

    def run(self, command: str) -> list[str]:
        """The argv that runs the shell `command` on host b, under its own hostname."""
        in_namespace = ["ip", "netns", "exec", self.namespace, "unshare", "--uts"]
        return [*in_namespace, "sh", "-c", f"hostname {self.hostname} && {command}"]

    def cut(self):
        _ip("link", "set", self.link, "down")

    def rejoin(self):
        _ip("link", "set", self.link, "up")

    def remove(self):
        _remove(self.namespace, self.link)


def remove_left_behind():
    """Namespaces of earlier runs whose process is gone (killed before its `finally`)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for pid in re.findall(rf"^{PREFIX}(\d+)\b", listed, re.MULTILINE):
        if not os.path.exists(f"/proc/{pid}"):
            _remove(f"{PREFIX}{pid}", f"{PREFIX}{pid}a")


def _remove(namespace: str, link: str):
    # Deleting the namespace deletes the veth end inside it, and with it the pair; the link goes in case the
    # pair was made but never moved.
    subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
    subprocess.run(["ip", "link", "delete", link], capture_output=True)


def _ip(*argv: str):
    done = subprocess.run(["ip", *argv], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(argv)}: {done.stderr.strip()}")
