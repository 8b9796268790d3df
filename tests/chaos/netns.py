"""Several hosts on one machine: each worker group in a network namespace of its own, joined to
the machine by a veth pair on a bridge in a private /24 that exists only here (10.213.X.0/24, X
picked free at random). PostgreSQL, Redis and the emulator listen on the bridge's address
(.1); hosts are .11, .12, ... `relay(ports)` starts, inside each namespace, the latency relay
(tests/chaos/relay.py: 20 +- 5 ms each way, a retransmission's stall on 0.5% of chunks) on the
namespace's 127.0.0.1 at each service's port, forwarding to the bridge: a host's workers reach
the services at 127.0.0.1 through it. It stands for netem, which this machine's kernel lacks
(no sch_netem). `cut(i)`/`restore(i)` take a host's link down and up. Everything created is
removed on exit, also when the test fails. Needs root (CAP_NET_ADMIN) and `ip` (iproute2); a
missing one fails the test with what to install, it never skips.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys

from tests.chaos.relay import Impairment
from tests.e2e.pipeline_harness import ROOT


class NetnsError(AssertionError):
    """The machine cannot make the namespaces; the message says what is missing."""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(args)}: {result.stderr.strip()}")
    return result


def _free_subnet() -> str:
    taken = sh("ip", "-4", "-o", "addr", "show").stdout
    for _ in range(100):
        subnet = f"10.213.{random.randint(100, 199)}"
        if f" {subnet}." not in taken:
            return subnet
    raise NetnsError("no free 10.213.X.0/24 for the chaos bridge")


class Hosts:
    def __init__(self, count: int, impairment: Impairment | None = None) -> None:
        if os.geteuid() != 0:
            raise NetnsError("the several-hosts run needs root (ip netns, veth): run `make chaos` as root")
        if shutil.which("ip") is None:
            raise NetnsError("`ip` is missing: apt-get install iproute2")
        self.count = count
        self.impairment = impairment
        self.relays: list[subprocess.Popen] = []
        self.relay_counts: list[dict] = []  # what each host's relay did, read on exit
        self.tag = secrets.token_hex(2)
        self.bridge = f"chbr{self.tag}"
        self.namespaces = [f"chaos-{self.tag}-h{i}" for i in range(count)]
        self.host_ends = [f"chv{self.tag}{i}" for i in range(count)]
        self.subnet = ""

    @property
    def address(self) -> str:
        """The machine's side: where the services listen for the hosts."""
        return f"{self.subnet}.1"

    def host_address(self, i: int) -> str:
        return f"{self.subnet}.{11 + i}"

    def prefix(self, i: int) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.namespaces[i])

    def __enter__(self) -> Hosts:
        try:
            self._create()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _create(self) -> None:
        self.subnet = _free_subnet()
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.address}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i, (ns, end) in enumerate(zip(self.namespaces, self.host_ends, strict=True)):
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", end, "master", self.bridge)
            sh("ip", "link", "set", end, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.host_address(i)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def relay(self, ports: list[int]) -> None:
        """In every namespace, 127.0.0.1:P relayed to the bridge's P for each port, through the
        impairment (none: a plain relay). Returns once every relay listens (or has exited saying why)."""
        impairment = self.impairment or Impairment(delay_ms=0, jitter_ms=0, loss=0)
        for i in range(self.count):
            routes = [f"--route=127.0.0.1:{p}={self.address}:{p}" for p in ports]
            self.relays.append(subprocess.Popen(
                [*self.prefix(i), sys.executable, "-m", "tests.chaos.relay", *routes,
                 f"--delay-ms={impairment.delay_ms}", f"--jitter-ms={impairment.jitter_ms}",
                 f"--loss={impairment.loss}", f"--seed={i}"],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for relay in self.relays:
            assert relay.stdout is not None
            line = relay.stdout.readline()  # "relay ready", or the start of why it could not listen
            if line.strip() != "relay ready":
                raise NetnsError(f"a relay did not start: {line}{relay.stdout.read()}")

    def cut(self, i: int) -> None:
        """Host i loses the network: its link goes down, its connections hang, nothing reaches it."""
        sh("ip", "-n", self.namespaces[i], "link", "set", "eth0", "down")

    def restore(self, i: int) -> None:
        sh("ip", "-n", self.namespaces[i], "link", "set", "eth0", "up")

    def __exit__(self, *exc: object) -> None:
        for relay in self.relays:
            relay.terminate()
            try:
                out, _ = relay.communicate(timeout=10)
                self.relay_counts += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(10)
        self.relays.clear()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)  # takes its veth end, and so the pair, with it
        for end in self.host_ends:
            sh("ip", "link", "del", end, check=False)
        sh("ip", "link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """What of ours still exists (for the test to assert it is nothing after exit)."""
        links = sh("ip", "-o", "link", "show").stdout
        spaces = sh("ip", "netns", "list").stdout
        return ([n for n in self.namespaces if n in spaces]
                + [d for d in (*self.host_ends, self.bridge) if f" {d}:" in links or f" {d}@" in links])
