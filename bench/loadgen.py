"""The load generator: many subscribers at once, each walking flows over HTTP.

Runs in its own process (``python -m bench.loadgen CONFIG.json RESULT.json``)
so it never shares an event loop or a GIL with a server. Each of
``connections`` virtual users owns one keep-alive HTTP/1.1 connection and
plays flows back to back (a closed loop, no think time). The HTTP client is
a few lines over asyncio streams (less CPU per request than a general
client); its own CPU share is reported so the reader sees whether it
limited the run.

Config keys: ``host, port, connections, warmup_s, duration_s, seed, flows``
(from ``bench.flows.mix_flows``), ``users`` (one context per virtual user:
``msisdns, recipients, acceptors, pending_per_acceptor``), ``check_text``
(False against the baseline server), ``max_flows`` (stop after this many
flows; 0 = no limit), ``run_id`` (makes session ids unique per phase),
``staged_sessions`` (N > 0: each user first walks N sessions up to their
last step, unmeasured, then all users send the last steps at once and only
those are measured: the ledger-bound throughput in isolation).

Prints ``measuring`` when its measured clock (warm-up included) starts.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REQUEST_TIMEOUT_S = 10.0
SERVICE_CODE = "*111*455#"
NETWORK_CODE = "25001"
IVR_NUMBER = "0890"
USSD_PATH = "/ussd/africastalking"
IVR_PATH = "/ivr/twilio"
MAX_ERROR_SAMPLES = 20
# A staged phase's preparation and its measured burst are each bounded by this.
STAGED_LIMIT_S = 120.0
_GATHER_ACTION = re.compile(r'<Gather[^>]*\saction="([^"]+)"')
_REDIRECT = re.compile(r"<Redirect[^>]*>([^<]+)</Redirect>")


class HttpError(Exception):
    """A request failed below HTTP (connection, timeout, malformed reply)."""


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._head = f"Host: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"

    async def post(self, path: str, body: bytes) -> tuple[int, str]:
        try:
            return await asyncio.wait_for(self._post(path, body), REQUEST_TIMEOUT_S)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from None
        except TimeoutError:
            self.close()
            raise HttpError(f"no reply in {REQUEST_TIMEOUT_S:.0f} s") from None

    async def _post(self, path: str, body: bytes) -> tuple[int, str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = (
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = int(value)
            elif lowered == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload.decode("utf-8", errors="replace")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def percentiles(values: list[float]) -> dict[str, float]:
    """count, mean, p50, p95, p99, max of latencies in milliseconds."""
    if not values:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return ordered[min(last, round(q * last))]

    return {
        "count": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": ordered[-1],
    }


class Run:
    """Shared state of one load phase: the clock window, counters and samples."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.check = bool(config.get("check_text", True))
        now = time.perf_counter()
        self.measure_from = now + float(config["warmup_s"])
        self.stop_at = self.measure_from + float(config["duration_s"])
        self.max_flows = int(config.get("max_flows", 0))
        self.flows_started = 0
        self.flows_done = 0
        self.latencies: dict[str, list[float]] = {}
        self.kinds: dict[str, str] = {}
        self.errors = 0
        self.error_samples: list[str] = []
        self.warmup_errors = 0
        self.hops_total = 0
        # Every request answered inside the window, recorded as a step or not.
        self.requests = 0

    def measuring(self, started: float, ended: float) -> bool:
        return self.measure_from <= started and ended <= self.stop_at

    def record(self, key: str, kind: str, started: float, ended: float) -> None:
        self.hops_total += 1
        if self.measuring(started, ended):
            self.kinds[key] = kind
            self.latencies.setdefault(key, []).append((ended - started) * 1000.0)

    def error(self, key: str, started: float, message: str) -> None:
        if started < self.measure_from:
            self.warmup_errors += 1
        else:
            self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{key}: {message}"[:400])

    def over(self) -> bool:
        if time.perf_counter() >= self.stop_at:
            return True
        return bool(self.max_flows) and self.flows_started >= self.max_flows


def _fill(template: str | None, values: dict[str, str]) -> str | None:
    if template is None:
        return None
    return template.format_map(values) if "{" in template else template


def _final(channel: str, text: str) -> bool:
    if channel == "ussd":
        return text.startswith("END")
    return "<Gather" not in text


class User:
    """One virtual subscriber: picks flows with its own seeded random and walks them."""

    def __init__(self, run: Run, uid: int, context: dict[str, Any], conn: Connection) -> None:
        self.run = run
        self.uid = uid
        self.conn = conn
        self.rng = random.Random(f"{run.config['seed']}:{uid}")
        self.msisdns: list[str] = context["msisdns"]
        self.recipients: list[str] = context.get("recipients") or self.msisdns
        self.acceptors: list[str] = list(context.get("acceptors") or [])
        left = context.get("pending_left") or {}
        per = int(context.get("pending_per_acceptor", 0))
        # Gifts accepted in earlier phases are gone: the harness passes what is left.
        self.pending = {m: int(left.get(m, per)) for m in self.acceptors}
        self.turn = 0

    def _flow(self, flows: list[dict[str, Any]]) -> dict[str, Any] | None:
        usable = [f for f in flows if f["needs"] != "pending_gifts" or any(self.pending.values())]
        if not usable:
            return None
        return self.rng.choices(usable, weights=[f["weight"] for f in usable])[0]

    def _subscriber(self, flow: dict[str, Any]) -> str:
        if flow["needs"] == "pending_gifts":
            left = [m for m, n in self.pending.items() if n > 0]
            msisdn = left[self.turn % len(left)]
            self.pending[msisdn] -= 1
            return msisdn
        return self.msisdns[self.turn % len(self.msisdns)]

    def _begin(self, flows: list[dict[str, Any]]) -> dict[str, Any] | None:
        """A new session of a randomly chosen flow: its walk state, nothing sent yet."""
        run = self.run
        flow = self._flow(flows)
        if flow is None:
            return None
        run.flows_started += 1
        self.turn += 1
        recipient = self.recipients[self.turn % len(self.recipients)]
        return {
            "flow": flow,
            "session": f"{run.config['run_id']}-{self.uid}-{self.turn}",
            "msisdn": self._subscriber(flow),
            "values": {
                "recipient_local": "8" + recipient.removeprefix("+7"),
                "recipient": recipient,
                "gift_points": "10",
            },
            "inputs": [],
            "index": 0,
            "gather": IVR_PATH,
            "redirect": IVR_PATH,
        }

    async def play(self, flows: list[dict[str, Any]]) -> None:
        run = self.run
        while not run.over():
            walk = self._begin(flows)
            if walk is None:
                return
            if await self._walk(walk, len(walk["flow"]["steps"])):
                run.flows_done += 1

    async def prepare(self, flows: list[dict[str, Any]], sessions: int) -> list[dict[str, Any]]:
        """Walk ``sessions`` sessions up to their last step (for the staged ledger phase)."""
        ready = []
        for _ in range(sessions):
            walk = self._begin(flows)
            if walk is None:
                break
            if await self._walk(walk, len(walk["flow"]["steps"]) - 1, record=False):
                ready.append(walk)
        return ready

    async def finish(self, walks: list[dict[str, Any]]) -> None:
        """Send the last step of every prepared session."""
        for walk in walks:
            if await self._walk(walk, len(walk["flow"]["steps"])):
                self.run.flows_done += 1

    async def _walk(self, walk: dict[str, Any], until: int, *, record: bool = True) -> bool:
        """Send steps ``walk["index"]`` .. ``until - 1`` of the walk's flow."""
        run, flow = self.run, walk["flow"]
        channel = flow["channel"]
        while walk["index"] < until:
            index = walk["index"]
            step = flow["steps"][index]
            if time.perf_counter() >= run.stop_at:
                return False
            value = _fill(step["input"], walk["values"])
            key = f"{flow['name']}/{step['name']}"
            keep = record and step["record"]
            reply = await self._send(walk, value, key, step["kind"] if keep else None)
            if reply is None:
                return False
            interlude = self._interlude(flow, step, reply)
            if interlude is not None:
                ikey = f"{flow['name']}/{interlude['name']}"
                reply = await self._send(walk, interlude["input"], ikey, "nav" if keep else None)
                if reply is None:
                    return False
            problem = self._check(step, channel, 200, reply)
            if problem:
                run.error(key, time.perf_counter(), problem)
                return False
            walk["index"] = index + 1
        return True

    async def _send(
        self, walk: dict[str, Any], value: str | None, key: str, kind: str | None
    ) -> str | None:
        """One request of the walk (its latency recorded under ``key`` unless ``kind`` is
        None); the reply text, or None after recording an error."""
        run, channel = self.run, walk["flow"]["channel"]
        inputs: list[str] = walk["inputs"]
        if channel == "ussd":
            if walk.get("sent"):  # the first request of a session carries no input
                inputs.append(value or "")
            form = {
                "sessionId": walk["session"],
                "serviceCode": SERVICE_CODE,
                "phoneNumber": walk["msisdn"],
                "networkCode": NETWORK_CODE,
                "text": "*".join(inputs),
            }
            path = USSD_PATH
        else:
            form = {"CallSid": walk["session"], "From": walk["msisdn"], "To": IVR_NUMBER}
            form["CallStatus"] = "in-progress"
            if not walk.get("sent"):
                path = IVR_PATH
            elif value is None:
                path = walk["redirect"]
            else:
                path = walk["gather"]
                form["Digits"] = value
        started = time.perf_counter()
        try:
            status, text = await self.conn.post(path, urlencode(form).encode())
        except HttpError as exc:
            run.error(key, started, str(exc))
            return None
        ended = time.perf_counter()
        if status != 200:
            run.error(key, started, f"HTTP {status}: {text[:200]!r}")
            return None
        if run.measuring(started, ended):
            run.requests += 1
        if kind is not None:
            run.record(key, kind, started, ended)
        walk["sent"] = True
        if channel == "ivr":
            walk["seq"] = walk.get("seq", 0) + 1
            action = f"{IVR_PATH}?seq={walk['seq']}"
            found = _GATHER_ACTION.search(text)
            walk["gather"] = html.unescape(found.group(1)) if found else action
            found = _REDIRECT.search(text)
            walk["redirect"] = html.unescape(found.group(1)) if found else f"{action}&timeout=1"
        return text

    def _interlude(
        self, flow: dict[str, Any], step: dict[str, Any], text: str
    ) -> dict[str, Any] | None:
        """The interlude screen ``text`` shows instead of the step's own, if any."""
        if not self.run.check or any(fragment in text for fragment in step["expect"]):
            return None
        for interlude in flow.get("interludes") or []:
            if any(fragment in text for fragment in interlude["match"]):
                return interlude
        return None

    def _check(self, step: dict[str, Any], channel: str, status: int, text: str) -> str | None:
        if status != 200:
            return f"HTTP {status}: {text[:200]!r}"
        if not self.run.check:
            return None
        if not any(fragment in text for fragment in step["expect"]):
            return f"expected one of {step['expect']!r} in {text[:300]!r}"
        if step["end"] is not None and _final(channel, text) != step["end"]:
            return f"expected {'a final' if step['end'] else 'a continuing'} reply: {text[:300]!r}"
        return None


async def run_load(config: dict[str, Any]) -> dict[str, Any]:
    """Play the configured load; the result dict (see ``bench.report``)."""
    run = Run(config)
    users = config["users"]
    conns = [Connection(config["host"], int(config["port"])) for _ in range(config["connections"])]
    players = [User(run, uid, users[uid % len(users)], conn) for uid, conn in enumerate(conns)]
    cpu_at_start: float | None = None

    async def mark_start() -> None:
        nonlocal cpu_at_start
        await asyncio.sleep(max(0.0, run.measure_from - time.perf_counter()))
        cpu_at_start = _cpu()

    staged = int(config.get("staged_sessions", 0))
    if staged:
        # Walk every session to its last step first (unmeasured), then send all
        # the last steps at once: the measured window holds those hops only.
        run.stop_at = time.perf_counter() + STAGED_LIMIT_S
        prepared = await asyncio.gather(*(p.prepare(config["flows"], staged) for p in players))
        run.measure_from = time.perf_counter()
        run.stop_at = run.measure_from + STAGED_LIMIT_S
        run.requests = 0  # the preparation's requests are not part of the burst
        print("measuring", flush=True)
        cpu_at_start = _cpu()
        wall0 = time.perf_counter()
        await asyncio.gather(*(p.finish(w) for p, w in zip(players, prepared, strict=True)))
        wall1 = run.stop_at = time.perf_counter()
    else:
        print("measuring", flush=True)
        marker = asyncio.create_task(mark_start())
        wall0 = time.perf_counter()
        await asyncio.gather(*(p.play(config["flows"]) for p in players))
        wall1 = time.perf_counter()
        marker.cancel()
    cpu_end = _cpu()
    for conn in conns:
        conn.close()
    window_end = min(wall1, run.stop_at)
    window = max(1e-9, window_end - run.measure_from)
    if cpu_at_start is None:  # a bounded run (max_flows) that ended inside the warm-up
        cpu_at_start, window = 0.0, wall1 - wall0
    steps = {
        key: {"kind": run.kinds[key], **percentiles(values)}
        for key, values in sorted(run.latencies.items())
    }
    by_kind: dict[str, list[float]] = {}
    for key, values in run.latencies.items():
        by_kind.setdefault(run.kinds[key], []).extend(values)
    everything = [v for values in run.latencies.values() for v in values]
    return {
        "window_s": window,
        "hops": len(everything),
        "hops_per_s": len(everything) / window,
        "all": percentiles(everything),
        "kinds": {
            kind: {**percentiles(values), "per_s": len(values) / window}
            for kind, values in sorted(by_kind.items())
        },
        "steps": steps,
        "errors": run.errors,
        "warmup_errors": run.warmup_errors,
        "error_samples": run.error_samples,
        "flows_started": run.flows_started,
        "flows_done": run.flows_done,
        "hops_total": run.hops_total,
        "requests": run.requests,
        "requests_per_s": run.requests / window,
        "client_cpu_s": cpu_end - cpu_at_start,
        "client_cpu_share": (cpu_end - cpu_at_start) / window,
        "connections": config["connections"],
        "pending_left": [p.pending for p in players],
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text("utf-8"))
    result = asyncio.run(run_load(config))
    Path(argv[1]).write_text(json.dumps(result), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
