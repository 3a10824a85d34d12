"""The earning rules file: its checks (FILE:LINE:COL), its schema, its arithmetic, its commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

import ledger
from ussd_service.app import create_app
from ussd_service.config import Settings
from ussd_service.earning_rules import (
    SCHEMA_FILE,
    RulesError,
    check_rules_file,
    load_rules,
    schema_text,
    validate_rules_text,
)

CLI = str(Path(sys.executable).parent / "ussd-service")
ROOT = Path(__file__).resolve().parents[1]
MOSCOW = ZoneInfo("Europe/Moscow")

BROKEN = """\
version: 1
rules:
  topup:
    kind: topup
    points_per_rouble: -1
    validity_months: 12
  Bad-Name:
    kind: tenure
    points_per_month: 5
    validity_months: 12
  tenure2:
    kind: tenur
    validity_months: 3
  more:
    kind: topup
    points_per_rouble: 0.5
    validity_months: 12
    colour: red
"""
WRONG_TOGETHER = """\
version: 1
rules:
  welcome:
    kind: joined
    points: 100
    validity_months: 60
  welcome_again:
    kind: joined
    points: 50
    validity_months: 6
  topup:
    kind: topup
    points_per_rouble: 0.1
    validity_months: 12
    caps: {per_event: 500, per_month: 100}
"""


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


def messages(text: str) -> list[str]:
    return [str(d) for d in validate_rules_text(text, "rules.yaml")[1]]


def test_the_shipped_rules_are_clean_and_the_schema_file_current() -> None:
    assert check_rules_file(ROOT / "earning_rules.yaml") == []
    assert SCHEMA_FILE.read_text("utf-8") == schema_text(), (
        "run python -m ussd_service.earning_rules"
    )
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    assert {"TopupRule", "TenureRule", "JoinedRule", "Caps"} <= set(schema["$defs"])


def test_schema_errors_point_at_the_line_and_column() -> None:
    assert messages(BROKEN) == [
        "rules.yaml:5:24: error: rules.topup.points_per_rouble: Input should be greater than 0",
        "rules.yaml:7:3: error: rules.Bad-Name: String should match pattern "
        "'^[a-z][a-z0-9_]{0,63}$'",
        "rules.yaml:12:11: error: rules.tenure2.kind: Input tag 'tenur' found using 'kind' does "
        "not match any of the expected tags: 'topup', 'tenure', 'joined'",
        "rules.yaml:18:5: error: rules.more: unknown field 'colour'",
    ]


def test_checks_across_fields_and_the_ledger_settings() -> None:
    assert messages(WRONG_TOGETHER) == [
        "rules.yaml:2:1: warning: no rule for kind 'tenure': such events earn nothing",
        "rules.yaml:6:22: error: rule 'welcome': validity_months must be less than the "
        "ledger's longest validity (60 months)",
        "rules.yaml:8:11: error: rule 'welcome_again': a second joining bonus (the first is "
        "'welcome'); a member gets one joining bonus",
        "rules.yaml:15:23: error: rule 'topup': per_event (500) is more than per_month (100)",
    ]


def test_yaml_errors_and_duplicate_rules() -> None:
    [bad] = messages("version: 1\nrules:\n  a: [unclosed\n")
    assert bad.startswith("rules.yaml:4:1: error: bad YAML")
    [dup] = messages(
        "version: 1\nrules:\n  a: {kind: joined, points: 1, validity_months: 1}\n"
        "  a: {kind: joined, points: 2, validity_months: 1}\n"
    )
    assert dup.startswith("rules.yaml:4:3: error: bad YAML")
    assert "duplicate" in dup
    assert messages("- 1\n") == [
        "rules.yaml:1:1: error: an earning rules file is a mapping (version, rules)"
    ]


def test_grants_round_as_each_rule_says(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(
        "version: 1\nrules:\n"
        "  down: {kind: topup, points_per_rouble: 0.1, validity_months: 12}\n"
        "  half: {kind: topup, points_per_rouble: 0.05, rounding: half_up, validity_months: 3,"
        " caps: {per_event: 7}}\n"
        "  up: {kind: topup, points_per_rouble: 0.01, rounding: up, validity_months: 1}\n"
        "  months: {kind: tenure, points_per_month: 20, validity_months: 12}\n"
    )
    rules = load_rules(path)
    # 23:30 UTC on 31 January is 1 February in Moscow: the expiry counts from there.
    at = datetime(2025, 1, 31, 23, 30, tzinfo=UTC)
    grants = rules.grants("topup", Decimal("159.90"), at, ledger.DEFAULT_SETTINGS)
    assert [(g.rule, g.points, g.note) for g in grants] == [
        ("down", 15, None),
        ("half", 7, "per-event cap of 7 points"),  # 7.995 -> 8, capped
        ("up", 2, None),  # 1.599 -> 2
    ]
    assert [g.expires_at.date() for g in grants] == [
        date(2026, 2, 1),
        date(2025, 5, 1),
        date(2025, 3, 1),
    ]
    assert all(g.expires_at.tzinfo == MOSCOW for g in grants)
    [tenure] = rules.grants("tenure", Decimal(3), at, ledger.DEFAULT_SETTINGS)
    assert tenure.points == 60
    assert rules.grants("joined", Decimal(0), at, ledger.DEFAULT_SETTINGS) == []


def test_a_broken_rules_file_stops_the_app(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(RulesError) as caught:
        create_app(settings.model_copy(update={"earning_rules_file": path}), background=False)
    assert str(caught.value).startswith(f"{path}:5:24: error:")


def test_rules_validate_command(tmp_path: Path) -> None:
    clean = _run("rules", "validate", "earning_rules.yaml")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "0 error(s), 0 warning(s)" in clean.stderr
    path = tmp_path / "rules.yaml"
    path.write_text(BROKEN)
    broken = _run("rules", "validate", str(path))
    assert broken.returncode == 1
    lines = broken.stdout.splitlines()
    assert lines[0] == (
        f"{path}:5:24: error: rules.topup.points_per_rouble: Input should be greater than 0"
    )
    assert len(lines) == 4
    assert "4 error(s)" in broken.stderr
    # The file named by the environment when none is given.
    from_env = _run("rules", "validate", env={"USSD_EARNING_RULES_FILE": str(path)})
    assert from_env.returncode == 1
    schema = _run("rules", "schema")
    assert schema.returncode == 0
    assert json.loads(schema.stdout)["title"] == "Earning rules of the bonus-points programme"


async def test_ledger_accrue_with_an_expiry(servers, database_url, pg_pool: asyncpg.Pool) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": servers.redis_url}
    await ledger.enroll(pg_pool, "+79161234567", key="e")
    day = date.today() + timedelta(days=40)
    done = _run("ledger", "accrue", "89161234567", "70", "--expires", day.isoformat(), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"credited 70; available 70; expires {day.isoformat()}"
    [lot] = await pg_pool.fetch("SELECT expires_at FROM point_lots")
    assert lot["expires_at"].astimezone(MOSCOW).date() == day
    past = _run("ledger", "accrue", "89161234567", "5", "--expires", "2020-01-01", env=env)
    assert past.returncode == 2
    assert "expires_at must be in the future" in past.stderr
    far = _run("ledger", "accrue", "89161234567", "5", "--expires", "2099-01-01", env=env)
    assert far.returncode == 2
    assert "within 60 months" in far.stderr
    bad = _run("ledger", "accrue", "89161234567", "5", "--expires", "31.12.2027", env=env)
    assert bad.returncode == 2
    assert "--expires" in bad.stderr
    assert await pg_pool.fetchval("SELECT count(*) FROM point_lots") == 1
