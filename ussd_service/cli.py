"""The ``ussd-service`` command line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import structlog
from aiohttp import web

from ussd_service.app import create_app
from ussd_service.config import ConfigError, Settings, load_settings
from ussd_service.logs import configure_logging
from ussd_service.runtime import apply_migrations, backing_servers

log = structlog.get_logger(__name__)

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the embedded servers' data (env USSD_DATA_DIR, default ./var).",
)


def _settings(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
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
@_DATA_DIR
def serve(
    host: str | None, port: int | None, menu_file: Path | None, data_dir: Path | None
) -> None:
    """Run the service; starts embedded Redis/PostgreSQL when no URLs are set."""
    settings = _settings(host=host, port=port, menu_file=menu_file, data_dir=data_dir)
    with backing_servers(settings) as resolved:
        assert resolved.database_url
        applied = asyncio.run(apply_migrations(resolved.database_url))
        log.info("migrations_applied", applied=applied)
        log.info("serving", url=f"http://{resolved.host}:{resolved.port}")
        web.run_app(
            create_app(resolved),
            host=resolved.host,
            port=resolved.port,
            print=None,
            access_log=None,
        )
    log.info("stopped")


@main.command()
@_DATA_DIR
def migrate(data_dir: Path | None) -> None:
    """Apply pending ledger migrations."""
    settings = _settings(data_dir=data_dir)
    with backing_servers(settings) as resolved:
        assert resolved.database_url
        applied = asyncio.run(apply_migrations(resolved.database_url))
    click.echo(
        f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
    )
