"""The ``ussd-service`` command line."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import click
import structlog
from aiohttp import web

import ledger
from embedded_servers import EmbeddedServerError
from menus import MenuError, json_schema
from ussd_service import earning_rules, notifier
from ussd_service.app import create_app
from ussd_service.backends import apply_migrations, backing_servers, connect_pg, open_pg_pool
from ussd_service.config import ConfigError, Settings, load_settings, mask_url
from ussd_service.event_loop import LOOP_NAME, new_event_loop
from ussd_service.logs import configure_logging
from ussd_service.menu_files import check_menu_file, load_menus
from ussd_service.supervisor import supervised_servers
from ussd_service.workers import run_workers

T = TypeVar("T")

log = structlog.get_logger(__name__)

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the embedded servers' data (env USSD_DATA_DIR, default ./var).",
)


def _settings(*, log_to_stderr: bool = True, **overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    stream = sys.stderr if log_to_stderr else sys.stdout
    configure_logging(settings.log_level, settings.log_format, stream)
    return settings


@click.group()
def main() -> None:
    """USSD, IVR and SMS help-line service of the bonus-points programme."""


@main.command()
@click.option("--host", help="Address to listen on (env USSD_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (env USSD_PORT, default 8080).")
@click.option(
    "--menu",
    "menu_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Menu file (env USSD_MENU_FILE, default menu_definitions.yaml).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT), to use several cores.",
)
@_DATA_DIR
def serve(
    host: str | None,
    port: int | None,
    menu_file: Path | None,
    workers: int,
    data_dir: Path | None,
) -> None:
    """Run the service; starts embedded Redis/PostgreSQL when no URLs are set.

    Embedded servers and workers that die are restarted; if one keeps dying,
    serve stops and exits 1 (for systemd or the like to restart it).
    """
    settings = _settings(
        log_to_stderr=False, host=host, port=port, menu_file=menu_file, data_dir=data_dir
    )
    try:
        menus = load_menus(settings.menu_file)
        # Checked before anything starts, as the menu is (the app loads it again).
        earning_rules.load_configured(settings.earning_rules_file, settings.ledger_settings())
    except (MenuError, earning_rules.RulesError) as exc:
        for diagnostic in exc.diagnostics:
            click.echo(str(diagnostic), err=True)
        raise SystemExit(1) from None
    try:
        with supervised_servers(settings) as (resolved, supervisor):
            _prepare_database(resolved, external=settings.database_url is not None)
            log.info(
                "serving",
                url=f"http://{resolved.host}:{resolved.port}",
                workers=workers,
                loop=LOOP_NAME,
            )
            workers_healthy = True
            if workers > 1:
                workers_healthy = run_workers(resolved, workers)
            else:
                # What start-up built (menus, compiled texts) lives as long as the process:
                # the collector's full passes need not walk it again (~0.8 s on a 10k-node menu).
                gc.freeze()
                web.run_app(
                    create_app(resolved, menus=menus, reload_signal=True),
                    host=resolved.host,
                    port=resolved.port,
                    print=None,
                    access_log=None,
                    loop=new_event_loop(),
                )
            gave_up = supervisor is not None and supervisor.gave_up
            log.info("stopped")
    except EmbeddedServerError as exc:
        raise click.ClickException(f"embedded servers in {settings.data_dir}: {exc}") from None
    if gave_up:
        raise click.ClickException("stopped: an embedded server kept dying (see the log)")
    if not workers_healthy:
        raise click.ClickException("stopped: workers kept dying (see the log)")


# How long `serve` waits for PostgreSQL at start before it gives up with an error.
DB_CONNECT_TIMEOUT_S = 10.0


def _migrated(settings: Settings, *, external: bool) -> list[str]:
    """Reach the database and apply pending migrations; the names applied now.

    A database out of reach is a one-line error naming where its URL came
    from (never its password), for every command that needs the ledger.
    """
    url = settings.database_url
    assert url
    try:
        asyncio.run(_reach_database(url))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        where = "DATABASE_URL" if external else f"embedded PostgreSQL in {settings.data_dir}"
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise click.ClickException(
            f"{where}: cannot connect to {mask_url(url)}: {reason}"
        ) from None
    return asyncio.run(apply_migrations(url))


def _prepare_database(settings: Settings, *, external: bool) -> None:
    """Apply migrations and load the first catalogue (``serve``)."""
    applied = _migrated(settings, external=external)
    log.info("migrations_applied", applied=applied)
    loaded = asyncio.run(_with_pool(settings, _first_catalog))
    if loaded is not None:
        log.info("catalog_loaded", rewards=loaded.loaded, source=str(ledger.DEFAULT_CATALOG))


async def _reach_database(url: str) -> None:
    conn = await connect_pg(url, timeout=DB_CONNECT_TIMEOUT_S)
    await conn.close()


@main.command()
@_DATA_DIR
def migrate(data_dir: Path | None) -> None:
    """Apply pending ledger migrations."""
    settings = _settings(data_dir=data_dir)
    with backing_servers(settings) as resolved:
        applied = _migrated(resolved, external=settings.database_url is not None)
    click.echo(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
    )


async def _with_pool(settings: Settings, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    assert settings.database_url
    pool = await open_pg_pool(settings.database_url, max_size=4)
    try:
        return await work(pool)
    finally:
        await pool.close()


async def _first_catalog(pool: asyncpg.Pool) -> ledger.CatalogLoad | None:
    """Load the shipped catalogue when the database has none (a first start)."""
    if await pool.fetchval("SELECT EXISTS (SELECT 1 FROM rewards)"):
        return None
    return await ledger.load_catalog(pool)


def _run_with_servers(data_dir: Path | None, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    settings = _settings(data_dir=data_dir)
    with backing_servers(settings) as resolved:
        _migrated(resolved, external=settings.database_url is not None)
        return asyncio.run(_with_pool(resolved, work))


@main.command()
@click.argument("menu_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def validate(menu_file: Path | None) -> None:
    """Check a menu file: prints FILE:LINE:COL: level: message; exit 1 on errors."""
    path = menu_file or load_settings(env={}).menu_file
    diagnostics = check_menu_file(path)
    for diagnostic in diagnostics:
        click.echo(str(diagnostic))
    errors = sum(1 for d in diagnostics if d.level == "error")
    warnings = len(diagnostics) - errors
    click.echo(f"{path}: {errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(1 if errors else 0)


@main.command()
def schema() -> None:
    """Print the JSON Schema of the menu language."""
    click.echo(json.dumps(json_schema(), ensure_ascii=False, indent=2))


@main.group(name="ledger")
def ledger_group() -> None:
    """Inspect and operate the points ledger."""


@ledger_group.command(name="check")
@_DATA_DIR
def ledger_check(data_dir: Path | None) -> None:
    """Verify every ledger invariant; exit 1 and list the violations if any is broken."""
    violations = _run_with_servers(data_dir, ledger.check)
    for violation in violations:
        click.echo(str(violation))
    if violations:
        click.echo(f"{len(violations)} violation(s)", err=True)
        sys.exit(1)
    click.echo("ledger check: clean")


@ledger_group.command(name="accrue")
@click.argument("number")
@click.argument("points", type=click.IntRange(min=1))
@click.option("--reason", default="manual", show_default=True, help="Why the points are given.")
@click.option("--key", "idempotency_key", help="Idempotency key; the same key never credits twice.")
@click.option(
    "--expires",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Expiry date YYYY-MM-DD (the end of that day, programme time zone); "
    "default: the ledger's validity from today.",
)
@_DATA_DIR
def ledger_accrue(
    number: str,
    points: int,
    *,
    reason: str,
    idempotency_key: str | None,
    expires: datetime | None,
    data_dir: Path | None,
) -> None:
    """Credit POINTS to the member NUMBER."""
    msisdn = ledger.try_normalize_msisdn(number, "RU")
    if msisdn is None:
        raise click.BadParameter("not a valid phone number", param_hint="NUMBER")
    key = idempotency_key or f"cli:{msisdn}:{points}:{reason}:{_now_token()}"
    expires_on: date | None = expires.date() if expires is not None else None

    async def accrue(pool: asyncpg.Pool) -> ledger.Outcome[ledger.Accrual]:
        return await ledger.accrue(
            pool, msisdn, points, key=key, reason=reason, expires_at=expires_on
        )

    try:
        outcome = _run_with_servers(data_dir, accrue)
    except ValueError as exc:  # an expiry in the past or beyond the ledger's horizon
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    if not outcome.ok:
        click.echo(f"refused: {outcome.code.value}", err=True)
        sys.exit(1)
    accrual = outcome.unwrap()
    click.echo(
        f"credited {accrual.points}; available {accrual.available}; "
        f"expires {accrual.expires_at.astimezone(_ZONE).date().isoformat()}"
    )


# Dates said to operators are the programme's calendar days.
_ZONE = ZoneInfo(ledger.DEFAULT_SETTINGS.timezone)


def _now_token() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


@main.group(name="rules")
def rules_group() -> None:
    """The earning rules of POST /v1/events (earning_rules.yaml)."""


@rules_group.command(name="validate")
@click.argument("rules_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def rules_validate(rules_file: Path | None) -> None:
    """Check an earning rules file: prints FILE:LINE:COL: level: message; exit 1 on errors."""
    settings = _settings()
    path = rules_file or settings.earning_rules_file
    diagnostics = earning_rules.check_rules_file(path, settings.ledger_settings())
    for diagnostic in diagnostics:
        click.echo(str(diagnostic))
    errors = sum(1 for d in diagnostics if d.level == "error")
    warnings = len(diagnostics) - errors
    click.echo(f"{path}: {errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(1 if errors else 0)


@rules_group.command(name="schema")
def rules_schema() -> None:
    """Print the JSON Schema of the earning rules file."""
    click.echo(earning_rules.schema_text(), nl=False)


@main.group(name="catalog")
def catalog_group() -> None:
    """Manage the rewards catalogue."""


@catalog_group.command(name="load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_DATA_DIR
def catalog_load(file: Path, data_dir: Path | None) -> None:
    """Load the rewards catalogue from FILE (YAML); rewards missing from it are deactivated."""

    async def load(pool: asyncpg.Pool) -> ledger.CatalogLoad:
        return await ledger.load_catalog(pool, file)

    try:
        result = _run_with_servers(data_dir, load)
    except ledger.CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"loaded {result.loaded} reward(s); deactivated {len(result.deactivated)}")


@main.command()
@_DATA_DIR
@click.option(
    "--menu",
    "menu_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Menu file with the SMS templates (env USSD_MENU_FILE, default menu_definitions.yaml).",
)
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
def worker(data_dir: Path | None, menu_file: Path | None, *, once: bool) -> None:
    """Run the notification delivery worker alone (SMS via USSD_SMS_GATEWAY_URL)."""
    settings = _settings(data_dir=data_dir, menu_file=menu_file)
    with backing_servers(settings) as resolved:
        _migrated(resolved, external=settings.database_url is not None)
        report = asyncio.run(notifier.run_worker(resolved, once=once))
    if report is not None:
        click.echo(
            f"claimed {report.claimed}, sent {len(report.sent)}, "
            f"retrying {len(report.retrying)}, parked {len(report.parked)}"
        )


@main.group(name="operator")
def operator_group() -> None:
    """Accounts of the help-desk operators' web console (/operator)."""


@operator_group.command(name="add")
@click.argument("name")
@_DATA_DIR
def operator_add(name: str, data_dir: Path | None) -> None:
    """Create the console account NAME, or give it a new password (asked twice).

    The password is stored as an argon2id hash; a new one signs the operator's
    open sessions out.
    """
    from ussd_service.web import limits, passwords  # noqa: PLC0415 - argon2 only when used
    from ussd_service.web.operators import set_operator  # noqa: PLC0415

    name = name.strip().lower()
    if not re.match(limits.OPERATOR_NAME_PATTERN, name):
        raise click.BadParameter(
            "2-64 of a-z, 0-9 and . _ - (starting with a letter or digit)", param_hint="NAME"
        )
    password = click.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True, err=True
    )
    if not limits.PASSWORD_MIN_LENGTH <= len(password) <= limits.PASSWORD_MAX_LENGTH:
        raise click.BadParameter(
            f"a password has {limits.PASSWORD_MIN_LENGTH} to {limits.PASSWORD_MAX_LENGTH} "
            "characters",
            param_hint="password",
        )
    password_hash = passwords.hash_password(password)

    async def store(pool: asyncpg.Pool) -> bool:
        _operator, created = await set_operator(pool, name, password_hash)
        return created

    created = _run_with_servers(data_dir, store)
    click.echo(f"operator {name}: {'created' if created else 'password reset'}")


# Tool commands (the designers' simulate, test-conversations, graph, report)
# live outside the service: their package registers them in this entry-point
# group, so the service's command line finds them without a static import.
TOOL_COMMANDS_GROUP = "ussd_service.commands"


def _add_tool_commands(group: click.Group) -> None:
    for entry in entry_points(group=TOOL_COMMANDS_GROUP):
        try:
            command = entry.load()
        except (ImportError, AttributeError) as exc:
            # A stale or missing tool must not take the service's own commands down.
            click.echo(f"ussd-service: tool command {entry.name!r} unavailable: {exc}", err=True)
            continue
        if not isinstance(command, click.Command):
            raise TypeError(f"entry point {entry.name} = {entry.value} is not a click command")
        group.add_command(command, name=entry.name)


_add_tool_commands(main)
