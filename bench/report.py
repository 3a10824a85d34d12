"""The printed report: tables of the run's JSON, every figure next to its baseline ratio."""

from __future__ import annotations

from typing import Any

# The targets (bench/README.md, "Targets").
NAV_THROUGHPUT_RATIO = 0.5
NAV_P99_MS = 25.0
LEDGER_HOPS_PER_S = 1_000.0
FLATNESS = 0.15
REDIS_BYTES_PER_SESSION = 2_048
SERVICE_RSS_MB = 200.0
RSS_SESSIONS = 10_000
PROFILE_LINES = 18


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def errors(results: dict[str, Any]) -> int:
    """Errors over every phase (warm-ups included: an error is an error)."""
    phases = results.get("phases", {}).values()
    return sum(p["errors"] + p.get("warmup_errors", 0) for p in phases)


def phase_line(name: str, result: dict[str, Any]) -> str:
    """One line per phase while the run goes on."""
    return (
        f"    {name}: {result['hops_per_s']:.0f} hops/s, p50 {_ms(result['all']['p50'])} ms, "
        f"p99 {_ms(result['all']['p99'])} ms, errors {result['errors']}"
        f"+{result.get('warmup_errors', 0)}, client CPU {result['client_cpu_share']:.0%}"
    ) + "".join(f"\n      error: {sample}" for sample in result.get("error_samples", [])[:3])


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(
        h.rjust(w) if i else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for row in rows:
        out.append(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def _phases(results: dict[str, Any]) -> str:
    phases = results["phases"]
    base = phases.get("baseline")
    rows = []
    for name, p in phases.items():
        if name.startswith("scale-") or name == "fill":
            continue
        b = phases.get("baseline@1") if p["connections"] == 1 else base
        b_all = b["all"] if b else {"p50": 0, "p99": 0}
        b_rate = b["hops_per_s"] if b else 0
        cpu = p["cpu_cores"]
        per_hop = p["cpu_us_per_hop"]
        server = "baseline" if p["server"] == "baseline" else "service"
        rows.append(
            [
                name,
                str(p["connections"]),
                f"{p['hops_per_s']:.0f}",
                _ratio(p["hops_per_s"], b_rate),
                _ms(p["all"]["p50"]),
                _ratio(p["all"]["p50"], b_all["p50"]),
                _ms(p["all"]["p95"]),
                _ms(p["all"]["p99"]),
                _ratio(p["all"]["p99"], b_all["p99"]),
                f"{p['errors']}+{p.get('warmup_errors', 0)}",
                f"{cpu.get(server, 0):.2f}",
                f"{per_hop.get(server, 0):.0f}",
                f"{cpu.get('redis', 0):.2f}",
                f"{cpu.get('postgres', 0):.2f}",
                f"{p['client_cpu_share']:.2f}",
                f"{p['peak_rss_mb'].get(server, 0):.0f}",
            ]
        )
    headers = [
        "phase", "conn", "hops/s", "xbase", "p50ms", "xbase", "p95ms", "p99ms", "xbase",
        "errors", "srvCPU", "us/hop", "redis", "pg", "client", "RSS MB",
    ]  # fmt: skip
    return _table(headers, rows)


def _steps(results: dict[str, Any]) -> str:
    phases = results["phases"]
    base = phases.get("baseline", {}).get("all", {"p50": 0, "p99": 0})
    rows = []
    for name, p in phases.items():
        if p["server"] == "baseline" or name.startswith(("scale-", "chain-")) or name == "fill":
            continue
        for key, s in p["steps"].items():
            rows.append(
                [
                    f"{name}: {key}",
                    s["kind"],
                    str(s["count"]),
                    f"{s['count'] / p['window_s']:.0f}",
                    _ms(s["p50"]),
                    _ratio(s["p50"], base["p50"]),
                    _ms(s["p95"]),
                    _ms(s["p99"]),
                    _ratio(s["p99"], base["p99"]),
                ]
            )
    headers = [
        "phase: flow/step",
        "kind",
        "count",
        "per s",
        "p50ms",
        "xbase",
        "p95ms",
        "p99ms",
        "xbase",
    ]
    return _table(headers, rows)


def _kinds(results: dict[str, Any]) -> str:
    phases = results["phases"]
    base = phases.get("baseline", {})
    b_all = base.get("all", {"p50": 0, "p99": 0})
    rows = []
    for name, p in phases.items():
        if p["server"] == "baseline" or name.startswith(("scale-", "chain-")) or name == "fill":
            continue
        for kind, k in p["kinds"].items():
            rows.append(
                [
                    name,
                    kind,
                    f"{k['per_s']:.0f}",
                    _ratio(k["per_s"], base.get("hops_per_s", 0)),
                    _ms(k["p50"]),
                    _ratio(k["p50"], b_all["p50"]),
                    _ms(k["p99"]),
                    _ratio(k["p99"], b_all["p99"]),
                ]
            )
    return _table(["phase", "kind", "hops/s", "xbase", "p50ms", "xbase", "p99ms", "xbase"], rows)


def _spread(values: list[float]) -> float:
    """Largest deviation from the mean, as a fraction of the mean."""
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return max(abs(v - mean) for v in values) / mean if mean else 0.0


def _scaling(results: dict[str, Any]) -> tuple[str, float | None]:
    scaling = results.get("scaling")
    if not scaling:
        return "(end-to-end scaling not run)", None
    base = results["phases"].get("baseline@1", {}).get("all", {"p50": 0, "p99": 0})
    rows = []
    for s in scaling.values():
        rows.append([
            str(s["size"]), str(s["depth"]), f"{s.get('ready_s', 0):.0f}", str(s.get("count", 0)),
            _ms(s.get("p50", 0)), _ratio(s.get("p50", 0), base["p50"]),
            _ms(s.get("p99", 0)), _ratio(s.get("p99", 0), base["p99"]),
            f"{s['hops_per_s']:.0f}", f"{s['cpu_us_per_hop']:.0f}", str(s["errors"]),
        ])  # fmt: skip
    spread = _spread([s.get("p50", 0) for s in scaling.values()])
    headers = ["nodes", "depth", "start s", "count", "p50ms", "xbase", "p99ms", "xbase",
               "req/s", "us/req", "errors"]  # fmt: skip
    return _table(headers, rows), spread


def _micro(results: dict[str, Any]) -> tuple[str, float | None]:
    micro = results.get("micro")
    if not micro:
        return "(micro-benchmark not run)", None
    rows, values = [], []
    for size, m in micro["sizes"].items():
        row = [size, f"{m['load_s']:.1f}"]
        for depth in m["depths"].values():
            row.append(f"{depth['us_per_step']:.0f}")
            values.append(depth["us_per_step"])
        rows.append(row)
    depths = next(iter(micro["sizes"].values()))["depths"]
    headers = ["nodes", "load s", *(f"us/step @{d}" for d in depths)]
    text = _table(headers, rows)
    real = micro.get("real_menu")
    if real:
        text += "\n\nEngine only, hops of menu_definitions.yaml (operations stubbed, no I/O)\n"
        text += _table(["hop", "us"], [[label, f"{us:.0f}"] for label, us in real.items()])
    return text, _spread(values)


def _chain(results: dict[str, Any]) -> str:
    chain = results.get("chain")
    if not chain:
        return "(chain walk not run)"
    rows = []
    for row in chain["rounds"]:
        base = row["baseline"]
        for name in ("baseline", "service"):
            r = row[name]
            rows.append([
                str(row["round"]), name, f"{r['hops_per_s']:.0f}",
                _ratio(r["hops_per_s"], base["hops_per_s"]), _ms(r["p50_ms"]), _ms(r["p99_ms"]),
                str(r["errors"]), f"{r['cpu_us_per_hop']:.0f}", f"{r['cpu_cores']:.2f}",
                f"{r['client_cpu_share']:.0%}",
            ])  # fmt: skip
    headers = ["round", "server", "hops/s", "xbase", "p50ms", "p99ms", "errors", "us/hop",
               "srvCPU", "client"]  # fmt: skip
    return _table(headers, rows)


def _clients(results: dict[str, Any]) -> str:
    clients = results.get("clients")
    if not clients:
        return "(Redis client comparison not run)"
    rows = [
        [r["client"], str(r["round_trips"]), r["loop"], f"{r['hops_per_s']:.0f}",
         f"{r['cpu_us_per_hop']:.0f}", f"{r['cpu_cores']:.2f}", _ms(r["p99_ms"]), str(r["errors"])]
        for r in clients["rows"]
    ]  # fmt: skip
    headers = ["client", "trips", "loop", "req/s", "us/req", "srvCPU", "p99ms", "errors"]
    text = _table(headers, rows)
    if clients.get("missing"):
        text += f"\n(not installed, not measured: {', '.join(clients['missing'])})"
    return text


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def targets(results: dict[str, Any]) -> list[list[str]]:
    """[target, measured, verdict] rows."""
    phases = results["phases"]
    base = phases.get("baseline")
    nav = phases.get("navigation")
    rows = []
    if base and nav:
        ratio = nav["hops_per_s"] / base["hops_per_s"]
        rows.append([f"navigation >= {NAV_THROUGHPUT_RATIO}x baseline hops/s",
                     f"{ratio:.2f}x ({nav['hops_per_s']:.0f} vs {base['hops_per_s']:.0f})",
                     _verdict(ratio >= NAV_THROUGHPUT_RATIO)])  # fmt: skip
        rows.append([f"navigation p99 < {NAV_P99_MS:.0f} ms", f"{nav['all']['p99']:.1f} ms",
                     _verdict(nav["all"]["p99"] < NAV_P99_MS)])  # fmt: skip
    total = errors(results)
    rows.append(["0 errors", str(total), _verdict(total == 0)])
    burst = phases.get("ledger-burst")
    if burst and "ledger" in burst["kinds"]:
        rate = burst["kinds"]["ledger"]["per_s"]
        rows.append([f"ledger-bound hops >= {LEDGER_HOPS_PER_S:.0f}/s (burst)", f"{rate:.0f}/s",
                     _verdict(rate >= LEDGER_HOPS_PER_S)])  # fmt: skip
    check = results.get("ledger_check")
    if check is not None:
        rows.append(["ledger check clean", f"{len(check)} violation(s)", _verdict(not check)])
    _, spread = _scaling(results)
    rows.append([f"hop cost flat within {FLATNESS:.0%} (end to end, p50)",
                 "-" if spread is None else f"max deviation {spread:.0%}",
                 _verdict(None if spread is None else spread <= FLATNESS)])  # fmt: skip
    _, micro_spread = _micro(results)
    rows.append([f"engine step flat within {FLATNESS:.0%} (micro)",
                 "-" if micro_spread is None else f"max deviation {micro_spread:.0%}",
                 _verdict(None if micro_spread is None else micro_spread <= FLATNESS)])  # fmt: skip
    sessions = results.get("sessions")
    if sessions:
        per = sessions["memory_usage_mean_b"]
        rows.append([f"Redis < {REDIS_BYTES_PER_SESSION} B per live session",
                     f"{per:.0f} B mean (max {sessions['memory_usage_max_b']})",
                     _verdict(per < REDIS_BYTES_PER_SESSION if per else None)])  # fmt: skip
        live = sessions["live_sessions"]
        rss = sessions["service_peak_rss_mb"]
        enough = live >= RSS_SESSIONS
        rows.append([f"service RSS < {SERVICE_RSS_MB:.0f} MB at {RSS_SESSIONS} live sessions",
                     f"{rss:.0f} MB peak at {live} live sessions",
                     _verdict(rss < SERVICE_RSS_MB if enough else None)])  # fmt: skip
    workers = results.get("workers")
    if workers is not None:
        if workers.get("supported") and nav:
            rows.append([f"--workers {workers['workers']} vs 1 (navigation)",
                         f"{workers['hops_per_s']:.0f} vs {nav['hops_per_s']:.0f} hops/s",
                         "info"])  # fmt: skip
        else:
            rows.append(["--workers N", "serve has no --workers flag yet", "n/a"])
    return rows


def render(results: dict[str, Any]) -> str:
    """The whole report as text."""
    m = results["machine"]
    seed = results.get("seed", {})
    out = [
        "USSD help line load benchmark",
        f"{m['date']}; {m['nproc']} cores, {m['memory_gib']} GiB, Python {m['python']}; "
        f"commit {m['commit']} (+{m['dirty_files']} uncommitted files)",
        f"service: one `ussd-service serve` process, embedded Redis and PostgreSQL "
        f"(PostgreSQL {seed.get('postgres', {})}); subscribers seeded via {seed.get('via', '?')}",
        "",
        "Phases (xbase: ratio to the baseline server at the same concurrency; srvCPU: cores "
        "used by the server under test; us/hop: its CPU per hop; redis/pg/client: cores)",
        _phases(results),
        "",
        "Navigation vs ledger-bound vs handoff hops",
        _kinds(results),
        "",
        "Per flow step (xbase: ratio to the baseline's p50/p99 at 64 connections)",
        _steps(results),
    ]
    sessions = results.get("sessions")
    if sessions:
        per_added = sessions.get("used_memory_per_added_session_b")
        out += [
            "",
            f"Live sessions: {sessions['live_sessions']}; MEMORY USAGE of {sessions['sampled']} "
            f"sampled session keys: mean {sessions['memory_usage_mean_b']:.0f} B, max "
            f"{sessions['memory_usage_max_b']} B; used_memory growth per added session: "
            + (f"{per_added:.0f} B" if per_added else "-")
            + f"; service RSS {sessions['service_rss_mb']:.0f} MB "
            f"(peak {sessions['service_peak_rss_mb']:.0f} MB)",
        ]
    scaling, _ = _scaling(results)
    micro, _ = _micro(results)
    out += [
        "",
        "Scaling, end to end (latency of the hop '1' at depths d..d+4 on generated menus; "
        "xbase: baseline at the same concurrency; req/s and us/req: every request of the "
        "phase, walking hops included; start s: until /readyz answered)",
        scaling,
        "",
        "Scaling, engine only (Menu.step + state JSON round trip, in process)",
        micro,
        "",
        f"Chain walk (the {results.get('chain', {}).get('levels', '?')}-level chain menu, "
        "64 connections, each walk a fresh session of the "
        "next of the subscribers, text accumulating; rounds alternate baseline and service; "
        "us/hop: the server's CPU per request; client: the load generator's share of a core)",
        _chain(results),
        "",
        "Redis clients (the baseline server, navigation requests at 64 connections, its Lua "
        "GET+SET run once or twice per request on a TCP Redis of its own; us/req: the "
        "server's CPU per request)",
        _clients(results),
        "",
        "Targets",
        _table(["target", "measured", "verdict"], targets(results)),
    ]
    for name, prof in results.get("profiles", {}).items():
        out += ["", f"Profile of the service in phase {name} (py-spy, {prof['samples']} samples)"]
        rows = [
            [f"{share:.0%}", fn, f"{own:.0%}", own_fn]
            for (fn, share), (own_fn, own) in zip(
                prof["inclusive"][:PROFILE_LINES], prof["self"][:PROFILE_LINES], strict=False
            )
        ]
        out.append(_table(["incl", "function (inclusive)", "self", "function (self)"], rows))
        shares = ", ".join(f"{name} {share:.0%}" for name, share in prof.get("packages", []))
        out.append(f"inclusive share by package: {shares}")
        project = prof.get("project", [])[:PROFILE_LINES]
        if project:
            out.append(_table(["incl", "project function"], [[f"{v:.0%}", n] for n, v in project]))
    samples = [s for p in results["phases"].values() for s in p.get("error_samples", [])]
    if samples:
        out += ["", "Error samples:", *(f"  {s}" for s in samples[:10])]
    return "\n".join(out)
