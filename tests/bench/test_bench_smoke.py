"""Smoke tests of the load harness: tiny runs against real servers, no timing assertions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aiohttp
import pytest
import redis

from bench import menugen, micro, report
from bench.__main__ import main as bench_main
from bench.flows import chain_flow, load_flows, mix_flows
from bench.loadgen import percentiles, run_load
from bench.procs import Monitor, Server, free_port
from bench.seed import population
from menus import NO_OPERATIONS
from ussd_service.menu_files import check_menu_file, load_menus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def baseline(servers, tmp_path):
    port = free_port()
    argv = [sys.executable, "-m", "bench.baseline", "--port", str(port)]
    argv += ["--redis-url", servers.redis_url]
    server = Server("baseline", argv, port, tmp_path / "baseline.log", {"PYTHONPATH": str(ROOT)})
    server.start()
    yield server
    server.stop()


def test_flows_file_names_known_flows_and_kinds():
    flows, mixes = load_flows()
    assert {"navigation", "ledger", "realistic", "ledger_burst", "baseline"} <= set(mixes)
    kinds = {step["kind"] for flow in flows.values() for step in flow["steps"]}
    assert kinds == {"nav", "ledger", "handoff"}
    assert all(flow["steps"][0]["input"] == "" for flow in flows.values())


async def test_load_generator_against_the_baseline_reports_every_field(baseline):
    flows, mixes = load_flows()
    people = population(4, 0)
    config = {
        "host": "127.0.0.1",
        "port": baseline.port,
        "connections": 4,
        "warmup_s": 0.3,
        "duration_s": 1.0,
        "seed": 1,
        "flows": mix_flows(flows, mixes["baseline"]),
        "users": people.users,
        "check_text": False,
        "run_id": "smoke",
    }
    with Monitor({"baseline": baseline.pid}) as monitor:
        before = monitor.usage()
        result = await run_load(config)
        after = monitor.usage()
    assert result["errors"] == 0, result["error_samples"]
    assert result["warmup_errors"] == 0
    assert result["hops"] > 0
    assert result["hops_per_s"] > 0
    assert set(result["all"]) == {"count", "mean", "p50", "p95", "p99", "max"}
    assert result["all"]["p50"] <= result["all"]["p99"] <= result["all"]["max"]
    assert "nav" in result["kinds"]
    assert any(key.startswith("ivr_balance/") for key in result["steps"])
    assert result["client_cpu_share"] > 0
    assert after.cpu["baseline"] > before.cpu["baseline"]


async def test_staged_burst_measures_only_last_steps(baseline):
    flows, mixes = load_flows()
    config = {
        "host": "127.0.0.1",
        "port": baseline.port,
        "connections": 2,
        "warmup_s": 0.0,
        "duration_s": 30.0,
        "seed": 1,
        "flows": mix_flows(flows, mixes["ledger_burst"]),
        "users": population(2, 0).users,
        "check_text": False,
        "run_id": "burst",
        "staged_sessions": 3,
    }
    result = await run_load(config)
    assert result["errors"] == 0, result["error_samples"]
    assert result["hops"] == 6
    assert set(result["kinds"]) == {"ledger"}


def test_generated_menus_are_valid(tmp_path):
    for nodes in (10, 100):
        path = menugen.generate(nodes, tmp_path / f"menu-{nodes}.yaml")
        assert check_menu_file(path) == []
        assert len(load_menus(path).current.nodes) == nodes


async def test_the_chain_flow_walks_the_chain_menu_to_its_end(tmp_path):
    """One walk of the chain flow through the engine: every level's screen, then the end."""
    path = menugen.generate_chain(tmp_path / "chain.yaml")
    assert check_menu_file(path) == []
    menu = load_menus(path).current
    flow = chain_flow(menugen.CHAIN_LEVELS, menugen.CHAIN_TITLE, menugen.CHAIN_DONE, [])
    assert len(flow["steps"]) == menugen.CHAIN_LEVELS + 1
    result = await menu.start("ussd", NO_OPERATIONS, "en")
    for step in flow["steps"]:
        if step["input"]:
            result = await menu.step(result.state, step["input"], NO_OPERATIONS)
        assert any(fragment in result.screen.text for fragment in step["expect"])
        assert result.ended == step["end"]


async def test_baseline_runs_its_script_twice_per_request_when_asked(servers, tmp_path):
    port = free_port()
    argv = [sys.executable, "-m", "bench.baseline", "--port", str(port)]
    argv += ["--redis-url", servers.redis_url, "--round-trips", "2"]
    server = Server("baseline", argv, port, tmp_path / "b.log", {"PYTHONPATH": str(ROOT)})
    client = redis.Redis.from_url(servers.redis_url)
    server.start()
    try:
        form = {"sessionId": "rt2", "phoneNumber": "+79160000000", "text": "1*1"}

        def evalsha_calls() -> int:
            stats = client.info("commandstats").get("cmdstat_evalsha", {})
            return int(stats.get("calls", 0))

        async with aiohttp.ClientSession() as http:

            async def post() -> None:
                async with http.post(f"{server.url}/ussd/africastalking", data=form) as reply:
                    assert reply.status == 200
                    assert (await reply.text()).startswith("CON ")

            await post()  # the first request also loads the script (NOSCRIPT, then EVAL)
            before = evalsha_calls()
            await post()
        assert evalsha_calls() - before == 2
    finally:
        server.stop()
        client.close()


def test_chain_and_client_phases_with_tiny_numbers(tmp_path):
    """``--phases chain,clients``: only those run; every round and client row, 0 errors."""
    output = tmp_path / "result.json"
    argv = ["--quick", "--phases", "chain,clients", "--chain-rounds", "2"]
    argv += ["--chain-duration", "0.6", "--chain-subscribers", "100", "--duration", "0.6"]
    argv += ["--warmup", "0.2", "--clients", "redis-py", "--loops", "asyncio"]
    argv += ["--output", str(output)]
    assert bench_main(argv) == 0
    results = json.loads(output.read_text("utf-8"))
    assert "navigation" not in results["phases"]
    rounds = results["chain"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for row in rounds:
        for name in ("baseline", "service"):
            assert row[name]["hops_per_s"] > 0
            assert row[name]["errors"] == 0
            assert row[name]["cpu_us_per_hop"] >= 0
    # CPU is read in clock ticks: a short window of the light baseline may read 0, the
    # service's walks over both rounds do not.
    assert sum(row["service"]["cpu_us_per_hop"] for row in rounds) > 0
    rows = results["clients"]["rows"]
    assert [(r["client"], r["round_trips"]) for r in rows] == [("redis-py", 1), ("redis-py", 2)]
    assert all(r["errors"] == 0 and r["hops_per_s"] > 0 for r in rows)
    text = output.with_suffix(".txt").read_text("utf-8")
    assert "Chain walk" in text
    assert "Redis clients" in text


def test_engine_micro_benchmark_and_report_render(tmp_path):
    result = micro.run([20], [1, 3], tmp_path, 0.01)
    assert set(result["sizes"]["20"]["depths"]) == {"1", "3"}
    result["real_menu"] = micro.run_real(ROOT / "menu_definitions.yaml", 0.01)
    assert len(result["real_menu"]) == len(micro.REAL_HOPS)
    assert all(us > 0 for us in result["real_menu"].values())
    phase = {
        "connections": 2, "hops_per_s": 10.0, "window_s": 1.0, "hops": 10,
        "all": percentiles([1.0, 2.0, 3.0]), "kinds": {"nav": {**percentiles([1.0]), "per_s": 1.0}},
        "steps": {"f/s": {"kind": "nav", **percentiles([1.0])}}, "errors": 0, "warmup_errors": 0,
        "error_samples": [], "cpu_cores": {"service": 0.5}, "cpu_us_per_hop": {"service": 100.0},
        "client_cpu_share": 0.1, "peak_rss_mb": {"service": 50.0},
    }  # fmt: skip
    results = {
        "machine": {"date": "d", "nproc": 2, "memory_gib": 1, "python": "3.11", "commit": "x",
                    "dirty_files": 0},
        "phases": {"baseline": {**phase, "server": "baseline"},
                   "navigation": {**phase, "server": "ussd-service"}},
        "micro": result,
    }  # fmt: skip
    text = report.render(results)
    assert "navigation >= 0.5x baseline hops/s" in text
    assert "1.00x" in text
    assert "catalogue -> 99 next page" in text
    assert report.errors(results) == 0


def test_whole_harness_with_tiny_numbers(tmp_path):
    """One command end to end: service, baseline, seeding, every phase, report; 0 errors."""
    output = tmp_path / "result.json"
    argv = ["--quick", "--duration", "1", "--warmup", "0.5", "--connections", "4"]
    argv += ["--sessions", "40", "--confirm-sessions", "1", "--pending-gifts", "1"]
    argv += ["--sizes", "20", "--output", str(output), "--phases", "navigation,ledger,realistic"]
    assert bench_main(argv) == 0
    results = json.loads(output.read_text("utf-8"))
    phases = results["phases"]
    assert {"baseline", "navigation", "ledger", "realistic", "ledger-burst"} <= set(phases)
    assert report.errors(results) == 0
    assert results["ledger_check"] == []
    assert results["seed"]["postgres"]["fsync"] == "on"
    navigation = phases["navigation"]
    assert navigation["hops"] > 0
    assert navigation["cpu_us_per_hop"]["service"] > 0
    assert navigation["peak_rss_mb"]["service"] > 0
    assert set(phases["ledger-burst"]["kinds"]) == {"ledger"}
    assert results["sessions"]["live_sessions"] >= 40
    assert results["sessions"]["memory_usage_mean_b"] > 0
    text = output.with_suffix(".txt").read_text("utf-8")
    assert "Targets" in text
    assert "ledger-bound hops >= 1000/s" in text
