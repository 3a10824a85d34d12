"""``ussd-service simulate``: a phone in the terminal (USSD, IVR or SMS).

The phone is a client of the real gateway endpoints, speaking the dialect
chosen with ``--gateway`` (by default Africa's Talking for USSD, Twilio for
the voice line, the SMS gateway's form for SMS). In-process mode starts (or
joins) the embedded servers, serves the app on a free loopback port and talks
HTTP to it, so both modes run the same code path. Scripted through stdin::

    printf '4\\n89161234567\\n150\\n1\\n' | ussd-service simulate --msisdn 89160000001
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import asyncpg
import click

import ledger
from designer.simulator.phone import Phone, PhoneError, ServiceClient, default_dialect
from designer.simulator.serving import ensure_catalog, http_session, serve_app
from designer.simulator.terminal import Terminal, run_phone
from ussd_service.backends import apply_migrations, backing_servers, open_pg_pool
from ussd_service.channels import DIALECTS, Dialect, dialect
from ussd_service.config import ENV_VARS, ConfigError, Settings, load_settings
from ussd_service.hop import normalise_msisdn
from ussd_service.logs import configure_logging
from ussd_service.menu_files import load_menus

DEFAULT_MSISDN = "+79160000001"
DEFAULT_CHANNEL = "ussd"
SIMULATOR_LOG_LEVEL = "warning"
# The simulator sets a language and loads a catalogue: two connections at most.
SIMULATOR_PG_POOL = 2


@dataclass(frozen=True)
class SimulatorOptions:
    """What ``simulate`` was asked to do; ``gateway`` None means the channel's default."""

    channel: str = DEFAULT_CHANNEL
    msisdn: str = DEFAULT_MSISDN
    url: str | None = None
    language: str | None = None
    gateway: str | None = None
    code: str | None = None

    def dialect(self) -> Dialect:
        """The dialect to speak (raises PhoneError when it is not of ``channel``)."""
        chosen = dialect(self.gateway) if self.gateway else default_dialect(self.channel)
        if chosen.channel != self.channel:
            raise PhoneError(
                f"the {chosen.name} gateway speaks {chosen.channel}, not {self.channel}"
            )
        return chosen


async def simulate_against(
    base_url: str, options: SimulatorOptions, term: Terminal, pool: asyncpg.Pool | None = None
) -> None:
    """Run the phone of ``options`` against the service at ``base_url``."""
    if options.language is not None:
        if pool is None:
            raise PhoneError("--lang needs the ledger: run in-process or set DATABASE_URL")
        await ledger.set_language(
            pool, options.msisdn, options.language, key=f"sim-lang-{uuid.uuid4().hex}"
        )
    async with http_session() as http:
        service = ServiceClient(
            http,
            base_url,
            gateway_secret=os.environ.get(ENV_VARS["gateway_secret"]) or None,
            api_token=os.environ.get(ENV_VARS["api_token"]) or None,
        )
        phone = Phone(service, options.dialect(), options.msisdn, number=options.code or "")
        await run_phone(term, phone)


async def _with_pool(
    database_url: str | None, body: Callable[[asyncpg.Pool | None], Awaitable[None]]
) -> None:
    if database_url is None:
        await body(None)
        return
    pool = await open_pg_pool(database_url, max_size=SIMULATOR_PG_POOL)
    try:
        await body(pool)
    finally:
        await pool.close()


def run_simulator(options: SimulatorOptions, settings: Settings, term: Terminal) -> None:
    """Against ``options.url``, or in-process on the embedded servers."""
    if options.url is not None:
        url = options.url
        asyncio.run(
            _with_pool(
                settings.database_url, lambda pool: simulate_against(url, options, term, pool)
            )
        )
        return
    with backing_servers(settings) as resolved:
        assert resolved.database_url
        asyncio.run(apply_migrations(resolved.database_url))

        async def in_process(pool: asyncpg.Pool | None) -> None:
            assert pool is not None
            if await ensure_catalog(pool):
                term.say("(loaded the default rewards catalogue into an empty ledger)")
            registry = load_menus(resolved.menu_file)
            # The menu's own code or number, unless one was given.
            point = getattr(registry.current.model.entry, options.channel, None)
            code = options.code or (point.code if point is not None else None)
            async with serve_app(resolved, menus=registry) as base_url:
                await simulate_against(base_url, replace(options, code=code), term, pool)

        asyncio.run(_with_pool(resolved.database_url, in_process))


def _channel_and_gateway(channel: str | None, gateway: str | None) -> tuple[str, str | None]:
    """``--gateway`` implies its channel; ``--channel`` alone takes its default dialect."""
    if gateway is None:
        return channel or DEFAULT_CHANNEL, None
    spoken = dialect(gateway).channel
    if channel is not None and channel != spoken:
        raise click.BadParameter(
            f"the {gateway} gateway speaks {spoken}, not {channel}", param_hint="--gateway"
        )
    return spoken, gateway


@click.command()
@click.option(
    "--channel",
    type=click.Choice(["ussd", "ivr", "sms"]),
    help="The phone's channel  [default: ussd, or the --gateway's channel]",
)
@click.option("--msisdn", default=DEFAULT_MSISDN, show_default=True, help="The phone's number.")
@click.option("--url", help="A running service (default: in-process on the embedded servers).")
@click.option("--lang", type=click.Choice(["ru", "en"]), help="Set the subscriber's language.")
@click.option(
    "--gateway",
    type=click.Choice([d.name for d in DIALECTS if d.session or d.sms_client]),
    help="Gateway dialect to speak  [default per channel: africastalking, twilio, sms]",
)
@click.option("--menu", "menu_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path))
def simulate(
    *,
    channel: str | None,
    msisdn: str,
    url: str | None,
    lang: str | None,
    gateway: str | None,
    menu_file: Path | None,
    data_dir: Path | None,
) -> None:
    """A phone in the terminal: USSD pages, IVR prompts or SMS, read from stdin."""
    try:
        settings = load_settings(menu_file=menu_file, data_dir=data_dir)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    # The terminal is the phone's screen: only warnings and errors, and on stderr.
    configure_logging(SIMULATOR_LOG_LEVEL, settings.log_format, stream=sys.stderr)
    try:
        number = normalise_msisdn(msisdn)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--msisdn") from None
    channel, gateway = _channel_and_gateway(channel, gateway)
    options = SimulatorOptions(
        channel=channel, msisdn=number, url=url, language=lang, gateway=gateway
    )
    term = Terminal(sys.stdin, sys.stdout, interactive=sys.stdin.isatty())
    try:
        run_simulator(options, settings, term)
    except (PhoneError, aiohttp.ClientError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        term.say()
