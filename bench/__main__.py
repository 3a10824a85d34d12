"""``python -m bench`` (``make bench``): the whole benchmark, one command.

Starts a real ``ussd-service serve`` (embedded Redis and PostgreSQL with fsync
on, in a fresh temporary data directory) and the baseline server, seeds
subscribers, plays the load phases with the load generator in its own
process, then the scaling runs, and prints the report (JSON next to it).
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import redis

from bench import menugen, micro, profile, report
from bench.baseline import CLIENTS
from bench.flows import chain_flow, load_flows, mix_flows
from bench.loadgen import STAGED_LIMIT_S
from bench.procs import BIN, Monitor, Server, Usage, cpu_delta, free_port
from bench.seed import ledger_check, population, seed
from embedded_servers import EmbeddedServers
from embedded_servers.redis_server import REDIS_SERVER_BIN

ROOT = Path(__file__).resolve().parents[1]
SESSION_PATTERN = "ussd:s:*"
MEMORY_SAMPLE = 300
SCALING_SIZES = (100, 1_000, 10_000)
SCALING_DEPTHS = (1, 10, 50)
# Hops measured per flow in a depth run: depths d .. d + DEPTH_SPAN - 1.
DEPTH_SPAN = 5
LOADGEN_GRACE_S = 60.0
FILL_MIN = 2_000
# Phases besides the main run's mixes: the chain walk, the Redis client comparison.
EXTRA_PHASES = ("chain", "clients")
CHAIN_ROUNDS = 3
CHAIN_SUBSCRIBERS = 2_000
CHAIN_CONNECTIONS = 64
CHAIN_DURATION_S = 8.0
CLIENT_ROUND_TRIPS = (1, 2)
REDIS_START_S = 10.0
LOOPS_DEFAULT = "asyncio,uvloop"


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per phase")
    parser.add_argument("--connections", type=int, default=64, help="concurrent subscribers")
    parser.add_argument(
        "--workers", type=int, default=2, help="also measure the navigation mix with N workers"
    )
    parser.add_argument("--sessions", type=int, default=10_000, help="live sessions to reach")
    parser.add_argument("--pending-gifts", type=int, default=12, help="gifts seeded per acceptor")
    parser.add_argument(
        "--confirm-sessions",
        type=int,
        default=40,
        help="sessions per connection walked to a confirmation for the ledger burst (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=8, help="random seed of the flows")
    parser.add_argument("--quick", action="store_true", help="short phases, no end-to-end scaling")
    parser.add_argument("--no-scaling", action="store_true", help="skip the scaling runs")
    parser.add_argument("--scaling-connections", type=int, default=1)
    parser.add_argument("--scaling-duration", type=float, default=5.0)
    parser.add_argument("--sizes", default=",".join(map(str, SCALING_SIZES)))
    parser.add_argument(
        "--phases",
        default="navigation,ledger,realistic,chain,clients",
        help="main-run mixes, and chain and clients (only those two: the main run is skipped)",
    )
    parser.add_argument("--chain-rounds", type=int, default=CHAIN_ROUNDS)
    parser.add_argument("--chain-subscribers", type=int, default=CHAIN_SUBSCRIBERS)
    parser.add_argument("--chain-duration", type=float, default=CHAIN_DURATION_S)
    parser.add_argument("--clients", default=",".join(CLIENTS), help="Redis clients to compare")
    parser.add_argument("--loops", default=LOOPS_DEFAULT, help="event loops to compare")
    parser.add_argument("--service-log-level", default=None, help="USSD_LOG_LEVEL of the service")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the service with py-spy during its phases (perturbs the figures)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    options = parser.parse_args(argv)
    if options.quick:
        options.duration = min(options.duration, 3.0)
        options.warmup = min(options.warmup, 1.0)
        options.sessions = min(options.sessions, 2_000)
        options.pending_gifts = min(options.pending_gifts, 3)
        options.scaling_duration = min(options.scaling_duration, 1.5)
        options.confirm_sessions = min(options.confirm_sessions, 4)
        options.chain_duration = min(options.chain_duration, 1.5)
        if options.loops == LOOPS_DEFAULT:
            options.loops = "asyncio"
        options.no_scaling = True
        options.workers = 1
    return options


def _machine() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], check=False, cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty_files": len([x for x in git("status", "--porcelain").splitlines() if x]),
    }


class Bench:
    """One run: the data directory, the servers, the phases and their results."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="ussd-bench-"))
        self.data_dir = self.workdir / "data"
        self.flows, self.mixes = load_flows()
        self.results: dict[str, Any] = {"machine": _machine(), "phases": {}, "options": {}}
        self.results["options"] = {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()
        }
        self.people = population(options.connections, options.pending_gifts)
        self.run_no = 0

    # ------------------------------------------------------------ processes

    def service(self, menu: Path | None = None, workers: int = 1) -> Server:
        port = free_port()
        argv = [str(BIN / "ussd-service"), "serve", "--port", str(port)]
        argv += ["--data-dir", str(self.data_dir)]
        if menu is not None:
            argv += ["--menu", str(menu)]
        if workers > 1:
            argv += ["--workers", str(workers)]
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        if self.options.service_log_level:
            env["USSD_LOG_LEVEL"] = self.options.service_log_level
        log = self.workdir / f"service-{port}.log"
        return Server("ussd-service", argv, port, log, env)

    def baseline(self, redis_url: str, extra: list[str] | None = None) -> Server:
        port = free_port()
        argv = [sys.executable, "-m", "bench.baseline", "--port", str(port)]
        argv += ["--redis-url", redis_url, *(extra or [])]
        log = self.workdir / f"baseline-{port}.log"
        return Server("baseline", argv, port, log, dict(os.environ, PYTHONPATH=str(ROOT)))

    def urls(self) -> tuple[str, str]:
        """Join the service's embedded servers (never starts or stops them)."""
        embedded = EmbeddedServers(self.data_dir)
        joined = embedded.start()
        if embedded.started_any:
            embedded.stop()
            raise RuntimeError("the service's embedded servers were not running")
        return joined.redis_url, joined.database_url

    # ---------------------------------------------------------------- phases

    def phase(
        self,
        name: str,
        server: Server,
        monitor: Monitor,
        flows: list[dict[str, Any]],
        *,
        connections: int | None = None,
        duration: float | None = None,
        warmup: float | None = None,
        check_text: bool = True,
        max_flows: int = 0,
        staged_sessions: int = 0,
        users: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Play one load phase; store and return its result."""
        options = self.options
        self.run_no += 1
        config = {
            "host": "127.0.0.1",
            "port": server.port,
            "connections": connections or options.connections,
            "warmup_s": options.warmup if warmup is None else warmup,
            "duration_s": options.duration if duration is None else duration,
            "seed": options.seed,
            "flows": flows,
            "users": self.people.users if users is None else users,
            "check_text": check_text,
            "max_flows": max_flows,
            "staged_sessions": staged_sessions,
            "run_id": f"r{self.run_no}-{random.Random(options.seed).randrange(10**6)}",
        }
        config_path = self.workdir / f"load-{self.run_no}.json"
        result_path = self.workdir / f"result-{self.run_no}.json"
        config_path.write_text(json.dumps(config), "utf-8")
        timing = (
            f"{staged_sessions} sessions each walked to their last step, then the burst"
            if staged_sessions
            else f"{config['warmup_s']:.0f}+{config['duration_s']:.0f} s"
        )
        print(f"  phase {name}: {config['connections']} connections, {timing} ...", flush=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(config_path), str(result_path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # "measuring": the load generator's clock runs from here
        begun = time.perf_counter()
        marks: list[Usage] = []
        limit = config["duration_s"] + LOADGEN_GRACE_S
        sampler = None
        raw = self.workdir / f"profile-{name}.txt"
        for at in (config["warmup_s"], config["warmup_s"] + config["duration_s"]):
            while proc.poll() is None and time.perf_counter() - begun < at:
                time.sleep(0.02)
            marks.append(monitor.usage())
            if len(marks) == 1:
                monitor.reset_peaks()
                if options.profile and server.name != "baseline" and not max_flows:
                    seconds = min(config["duration_s"], 30.0)
                    sampler = profile.start(server.pid, seconds, raw)
        proc.wait(timeout=limit)
        proc.stdout.close()
        if sampler is not None:
            sampler.wait(timeout=LOADGEN_GRACE_S)
            if raw.exists():
                self.results.setdefault("profiles", {})[name] = profile.summarise(raw)
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed in phase {name}")
        result = json.loads(result_path.read_text("utf-8"))
        for uid, left in enumerate(result.pop("pending_left", [])):
            self.people.users[uid % len(self.people.users)]["pending_left"] = left
        spent = cpu_delta(marks[0], marks[1])
        window = max(1e-9, marks[1].at - marks[0].at)
        result["cpu_cores"] = {group: s / window for group, s in spent.items()}
        # Per request answered in the window (unrecorded walking hops of a depth run included).
        requests = result["requests"]
        result["cpu_us_per_hop"] = {
            group: s * 1e6 / requests if requests else 0.0 for group, s in spent.items()
        }
        result["peak_rss_mb"] = {g: v / 2**20 for g, v in monitor.peaks().items()}
        result["server"] = server.name
        self.results["phases"][name] = result
        print(report.phase_line(name, result), flush=True)
        return result

    # ---------------------------------------------------------------- redis

    def sessions(self, redis_url: str) -> dict[str, Any]:
        """Live session keys, their ``MEMORY USAGE`` (sample) and Redis ``used_memory``."""
        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=SESSION_PATTERN, count=1000))
            sample = random.Random(self.options.seed).sample(keys, min(len(keys), MEMORY_SAMPLE))
            sizes = [int(client.memory_usage(key) or 0) for key in sample]
            used = int(client.info("memory")["used_memory"])
        finally:
            client.close()
        return {
            "live_sessions": len(keys),
            "sampled": len(sizes),
            "memory_usage_mean_b": sum(sizes) / len(sizes) if sizes else 0.0,
            "memory_usage_max_b": max(sizes, default=0),
            "used_memory_b": used,
        }

    # ----------------------------------------------------------------- runs

    def main_run(self) -> None:
        service = self.service()
        print(f"starting the service in {self.data_dir} ...", flush=True)
        service.start()
        try:
            redis_url, database_url = self.urls()
            started = time.perf_counter()
            self.results["seed"] = asyncio.run(seed(database_url, service.url, self.people))
            self.results["seed"]["seconds"] = time.perf_counter() - started
            print(f"  seeded: {self.results['seed']}", flush=True)
            baseline = self.baseline(redis_url)
            baseline.start()
            try:
                roots = {"service": service.pid, "baseline": baseline.pid}
                with Monitor(roots) as monitor:
                    self._load_phases(service, baseline, monitor, redis_url)
            finally:
                baseline.stop()
            self.results["ledger_check"] = asyncio.run(ledger_check(database_url))
        finally:
            service.stop()

    def _load_phases(
        self, service: Server, baseline: Server, monitor: Monitor, redis_url: str
    ) -> None:
        options = self.options
        base_flows = mix_flows(self.flows, self.mixes["baseline"])
        self.phase("baseline", baseline, monitor, base_flows, check_text=False)
        for mix in [m for m in options.phases.split(",") if m]:
            self.phase(mix, service, monitor, mix_flows(self.flows, self.mixes[mix]))
        if options.confirm_sessions:
            self.phase(
                "ledger-burst",
                service,
                monitor,
                mix_flows(self.flows, self.mixes["ledger_burst"]),
                warmup=0.0,
                duration=STAGED_LIMIT_S,
                staged_sessions=options.confirm_sessions,
            )
        if not options.no_scaling:
            self.phase(
                "baseline@1",
                baseline,
                monitor,
                base_flows,
                connections=options.scaling_connections,
                duration=options.scaling_duration,
                warmup=1.0,
                check_text=False,
            )
        # Fill Redis up to the target of live sessions with the navigation mix.
        before = self.sessions(redis_url)
        # Always add some, so Redis used_memory growth per session is measured too.
        missing = max(options.sessions - before["live_sessions"], min(FILL_MIN, options.sessions))
        if missing > 0:
            opener = {
                "name": "open",
                "channel": "ussd",
                "needs": None,
                "weight": 1.0,
                "steps": [dict(self.flows["balance"]["steps"][0], name="open")],
                "interludes": self.flows["balance"]["interludes"],
            }
            self.phase(
                "fill", service, monitor, [opener], warmup=0.0, duration=300.0, max_flows=missing
            )
        after = self.sessions(redis_url)
        grown = after["live_sessions"] - before["live_sessions"]
        after["used_memory_per_added_session_b"] = (
            (after["used_memory_b"] - before["used_memory_b"]) / grown if grown > 0 else None
        )
        after["service_rss_mb"] = monitor.last_rss.get("service", 0) / 2**20
        after["service_peak_rss_mb"] = monitor.peaks().get("service", 0) / 2**20
        self.results["sessions"] = after

    def scaling_run(self) -> None:
        """The same hop against generated menus, at several session depths, end to end."""
        options = self.options
        sizes = [int(s) for s in options.sizes.split(",") if s]
        out: dict[str, Any] = {}
        for size in sizes:
            menu = menugen.generate(size, self.workdir / f"menu-{size}.yaml")
            service = self.service(menu=menu)
            print(f"scaling: service with a {size}-node menu ...", flush=True)
            started = time.perf_counter()
            service.start()
            ready_s = time.perf_counter() - started
            try:
                with Monitor({"service": service.pid}) as monitor:
                    for depth in SCALING_DEPTHS:
                        result = self.phase(
                            f"scale-{size}-depth{depth}",
                            service,
                            monitor,
                            [self._depth_flow(depth)],
                            connections=options.scaling_connections,
                            duration=options.scaling_duration,
                            warmup=1.0,
                        )
                        out[f"{size}/{depth}"] = {
                            "size": size,
                            "depth": depth,
                            "ready_s": ready_s,
                            **result["kinds"].get("nav", {}),
                            "hops_per_s": result["requests_per_s"],
                            "cpu_us_per_hop": result["cpu_us_per_hop"].get("service", 0.0),
                            "errors": result["errors"],
                        }
            finally:
                service.stop()
        self.results["scaling"] = out

    def _depth_flow(self, depth: int) -> dict[str, Any]:
        def step(name: str, value: str, record: bool) -> dict[str, Any]:
            return {
                "name": name,
                "input": value,
                "expect": ["Node "],
                "end": False,
                "kind": "nav",
                "record": record,
            }

        steps = [step("begin", "", False)]
        steps += [step("walk", "1", False) for _ in range(depth - 1)]
        steps += [step(f"hop@{depth}", "1", True) for _ in range(DEPTH_SPAN)]
        return {
            "name": f"depth{depth}",
            "channel": "ussd",
            "needs": None,
            "weight": 1.0,
            "steps": steps,
            "interludes": self.flows["balance"]["interludes"],
        }

    def workers_run(self) -> None:
        """The navigation mix with ``--workers N``, when ``serve`` has the flag."""
        options = self.options
        helptext = subprocess.run(
            [str(BIN / "ussd-service"), "serve", "--help"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        if "--workers" not in helptext:
            self.results["workers"] = {"supported": False}
            print("workers: `ussd-service serve` has no --workers flag yet; skipped", flush=True)
            return
        service = self.service(workers=options.workers)
        service.start()
        try:
            with Monitor({"service": service.pid}) as monitor:
                result = self.phase(
                    f"navigation-workers{options.workers}",
                    service,
                    monitor,
                    mix_flows(self.flows, self.mixes["navigation"]),
                )
        finally:
            service.stop()
        self.results["workers"] = {
            "supported": True,
            "workers": options.workers,
            "hops_per_s": result["hops_per_s"],
        }

    def micro_run(self) -> None:
        sizes = [int(s) for s in self.options.sizes.split(",") if s]
        if self.options.quick:
            sizes = [s for s in sizes if s <= 1_000]
        print("engine micro-benchmark ...", flush=True)
        seconds = 0.5 if self.options.quick else 1.5
        self.results["micro"] = micro.run(sizes, list(SCALING_DEPTHS), self.workdir, seconds)
        self.results["micro"]["real_menu"] = micro.run_real(ROOT / "menu_definitions.yaml", seconds)

    def chain_run(self) -> None:
        """The chain menu walked by every subscriber, rounds alternated between the baseline
        and the service: ``wrk -t1 -c64 -d8s``-style, the same requests for both."""
        options = self.options
        menu = menugen.generate_chain(self.workdir / "chain.yaml")
        flow = chain_flow(
            menugen.CHAIN_LEVELS,
            menugen.CHAIN_TITLE,
            menugen.CHAIN_DONE,
            self.flows["balance"]["interludes"],
        )
        # The subscribers, shared out over the connections: each walk takes the
        # connection's next number and a fresh session id.
        numbers = [f"+7916{n:07d}" for n in range(options.chain_subscribers)]
        users = [{"msisdns": numbers[i::CHAIN_CONNECTIONS]} for i in range(CHAIN_CONNECTIONS)]
        service = self.service(menu=menu)
        print(f"chain: service with the {menugen.CHAIN_LEVELS}-level chain menu ...", flush=True)
        service.start()
        rounds: list[dict[str, Any]] = []
        try:
            redis_url, _database_url = self.urls()
            baseline = self.baseline(redis_url)
            baseline.start()
            try:
                roots = {"service": service.pid, "baseline": baseline.pid}
                with Monitor(roots) as monitor:
                    for number in range(1, options.chain_rounds + 1):
                        row: dict[str, Any] = {"round": number}
                        for server in (baseline, service):
                            name = "baseline" if server is baseline else "service"
                            result = self.phase(
                                f"chain-{name}-{number}",
                                server,
                                monitor,
                                [flow],
                                connections=CHAIN_CONNECTIONS,
                                duration=options.chain_duration,
                                check_text=server is service,
                                users=users,
                            )
                            row[name] = _summary(result, name)
                        rounds.append(row)
            finally:
                baseline.stop()
        finally:
            service.stop()
        self.results["chain"] = {
            "levels": menugen.CHAIN_LEVELS,
            "subscribers": options.chain_subscribers,
            "connections": CHAIN_CONNECTIONS,
            "duration_s": options.chain_duration,
            "rounds": rounds,
        }

    def clients_run(self) -> None:
        """The baseline server with each Redis client, 1 and 2 round trips per request, on
        asyncio and (when installed) uvloop, against a Redis of its own on TCP."""
        options = self.options
        wanted = [c for c in options.clients.split(",") if c in CLIENTS]
        clients = [c for c in wanted if c != "glide" or _installed("glide")]
        loops = [x for x in options.loops.split(",") if x == "asyncio" or _installed(x)]
        flows = mix_flows(self.flows, self.mixes["baseline"])
        rows: list[dict[str, Any]] = []
        with _tcp_redis(self.workdir) as redis_url:
            for loop in loops:
                for client in clients:
                    for trips in CLIENT_ROUND_TRIPS:
                        extra = ["--client", client, "--round-trips", str(trips), "--loop", loop]
                        server = self.baseline(redis_url, extra)
                        server.start()
                        try:
                            with Monitor({"baseline": server.pid}) as monitor:
                                result = self.phase(
                                    f"client-{client}-rt{trips}-{loop}",
                                    server,
                                    monitor,
                                    flows,
                                    check_text=False,
                                )
                        finally:
                            server.stop()
                        summary = _summary(result, "baseline")
                        rows.append(
                            {"client": client, "round_trips": trips, "loop": loop, **summary}
                        )
        self.results["clients"] = {
            "rows": rows,
            "missing": [name for name in ("glide", "uvloop") if not _installed(name)],
        }

    def close(self) -> None:
        if self.options.keep:
            print(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _summary(result: dict[str, Any], group: str) -> dict[str, Any]:
    """The figures of a comparison row: throughput, latency, errors, the server's CPU."""
    return {
        "hops_per_s": result["requests_per_s"],
        "p50_ms": result["all"]["p50"],
        "p99_ms": result["all"]["p99"],
        "errors": result["errors"] + result.get("warmup_errors", 0),
        "cpu_us_per_hop": result["cpu_us_per_hop"].get(group, 0.0),
        "cpu_cores": result["cpu_cores"].get(group, 0.0),
        "client_cpu_share": result["client_cpu_share"],
    }


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@contextlib.contextmanager
def _tcp_redis(workdir: Path) -> Iterator[str]:
    """A Redis of the comparison's own on a TCP port (valkey-glide takes no Unix socket),
    without persistence: every client gets the same server."""
    port = free_port()
    log = (workdir / f"redis-{port}.log").open("w")
    argv = [str(REDIS_SERVER_BIN), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + REDIS_START_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the comparison's Redis did not start") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    bench = Bench(options)
    phases = [p for p in options.phases.split(",") if p]
    main_phases = [p for p in phases if p not in EXTRA_PHASES]
    options.phases = ",".join(main_phases)
    try:
        if main_phases or not phases:
            bench.main_run()
            if not options.no_scaling:
                bench.scaling_run()
            if options.workers > 1:
                bench.workers_run()
            bench.micro_run()
        if "chain" in phases:
            bench.chain_run()
        if "clients" in phases:
            bench.clients_run()
    finally:
        bench.close()
    text = report.render(bench.results)
    print(text)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(bench.results, indent=1), "utf-8")
    options.output.with_suffix(".txt").write_text(text, "utf-8")
    print(f"\nJSON: {options.output}")
    return 0 if report.errors(bench.results) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
