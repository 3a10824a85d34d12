"""The command line as an operator uses it: real processes, real servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg

import ledger

CLI = str(Path(sys.executable).parent / "ussd-service")
ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_validate_clean_file_exits_0() -> None:
    result = _run("validate", "menu_definitions.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stderr


def test_validate_broken_file_points_at_the_line(tmp_path: Path) -> None:
    text = (ROOT / "menu_definitions.yaml").read_text()
    # The first option's target, misspelt.
    target = re.search(r"target: (\w+)", text)
    assert target is not None
    broken = text.replace(target.group(0), "target: gift_recipent", 1)
    assert broken != text
    # And a service text gone: the service's own checks run too.
    broken = broken.replace("  session_expired:\n", "  session_gone:\n", 1)
    path = tmp_path / "menu.yaml"
    path.write_text(broken)
    result = _run("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    line_no = next(i for i, line in enumerate(broken.splitlines(), 1) if "gift_recipent" in line)
    assert any(
        line.startswith(f"{path}:{line_no}:") and "gift_recipent" in line for line in lines
    ), lines
    assert any("the service's text 'session_expired' is missing" in line for line in lines)


def test_schema_is_json_with_the_node_kinds() -> None:
    result = _run("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"MenuNode", "InputNode", "ActionNode"} <= set(schema["$defs"])


async def test_ledger_check_accrue_and_a_corrupted_database(servers, database_url, pg_pool) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": servers.redis_url}
    await ledger.enroll(pg_pool, "+79161234567", key="e")

    accrued = _run("ledger", "accrue", "8 916 123 45 67", "300", "--key", "k1", env=env)
    assert accrued.returncode == 0, accrued.stderr
    assert "available 300" in accrued.stdout
    repeat = _run("ledger", "accrue", "89161234567", "300", "--key", "k1", env=env)
    assert "available 300" in repeat.stdout  # same key: credited once

    clean = _run("ledger", "check", env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "clean" in clean.stdout

    async with pg_pool.acquire() as conn:
        # Corrupt the stored balance behind the ledger's back.
        await conn.execute(
            "UPDATE accounts SET balance = balance + 7 WHERE subscriber_id = "
            "(SELECT id FROM subscribers WHERE msisdn = $1)",
            "+79161234567",
        )
    broken = _run("ledger", "check", env=env)
    assert broken.returncode == 1
    assert "violation" in broken.stderr
    assert broken.stdout.strip()


async def test_catalog_load(servers, database_url, pg_pool: asyncpg.Pool, tmp_path: Path) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": servers.redis_url}
    result = _run("catalog", "load", str(ledger.DEFAULT_CATALOG), env=env)
    assert result.returncode == 0, result.stderr
    count = await pg_pool.fetchval("SELECT count(*) FROM rewards WHERE active")
    assert count >= 20
    assert f"loaded {count} reward(s)" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("rewards: [{code: x}]\n")
    refused = _run("catalog", "load", str(bad), env=env)
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
