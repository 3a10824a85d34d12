"""``ussd-service test-conversations``: the conversation files, run alone on sandbox servers."""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from designer.conversations.fixtures import ScratchDatabases, sandbox_servers
from designer.conversations.runner import ConversationEnv, run_conversation
from designer.conversations.spec import (
    Conversation,
    ConversationFailedError,
    ConversationFileError,
    load_file,
)
from menus import MenuError, MenuRegistry
from ussd_service.backends import open_pg_pool, open_redis
from ussd_service.channels import DIALECTS, dialect
from ussd_service.config import Settings
from ussd_service.logs import configure_logging
from ussd_service.menu_files import load_menus

CONVERSATION_GLOB = "*.yaml"
DEFAULT_CONVERSATIONS = Path("tests/conversations")
# One conversation's app and its fixtures share the pool; a few connections do.
CONVERSATION_PG_POOL = 4
CONVERSATION_REDIS_CONNECTIONS = 2
# The report is the output: the app's own logs only when something is wrong.
RUNNER_LOG_LEVEL = "warning"


def discover(paths: Sequence[Path]) -> list[Path]:
    """YAML files named, or found in named directories."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(path.glob(CONVERSATION_GLOB))
        else:
            files.append(path)
    return files


def select(conversations: Sequence[Conversation], pattern: str | None) -> list[Conversation]:
    """Conversations whose test id matches the glob ``pattern`` (all when None)."""
    if not pattern:
        return list(conversations)
    wanted = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
    return [c for c in conversations if fnmatch.fnmatchcase(c.test_id, wanted)]


def over_gateway(conversations: Sequence[Conversation], gateway: str) -> list[Conversation]:
    """The conversations of ``gateway``'s channel run over it instead (named in their ids)."""
    channel = dialect(gateway).channel
    moved: dict[str, Conversation] = {}
    for conv in conversations:
        over = conv
        if conv.channel == channel:
            over = dataclasses.replace(conv, gateway=gateway, named_gateway=True)
        # Variants that differed only by gateway are now one and the same.
        moved.setdefault(f"{over.file}::{over.test_id}", over)
    return list(moved.values())


@dataclass(frozen=True)
class Outcome:
    """One conversation's result."""

    conversation: Conversation
    error: str | None
    seconds: float


async def run_standalone(
    conversations: Sequence[Conversation],
    *,
    redis_url: str,
    database_url: str,
    menus: MenuRegistry,
) -> AsyncIterator[Outcome]:
    """Run each conversation on a fresh database cloned from a migrated template."""
    redis = await open_redis(redis_url, max_connections=CONVERSATION_REDIS_CONNECTIONS)
    try:
        async with ScratchDatabases(database_url) as databases:
            for index, conversation in enumerate(conversations):
                await redis.flushdb()
                started = time.monotonic()
                error = None
                async with databases.fresh(f"ussd_conv_{os.getpid()}_{index}") as url:
                    pool = await open_pg_pool(url, min_size=1, max_size=CONVERSATION_PG_POOL)
                    try:
                        settings = Settings(redis_url=redis_url, database_url=url)
                        env = ConversationEnv(settings=settings, pool=pool, menus=menus)
                        await run_conversation(conversation, env)
                    except ConversationFailedError as exc:
                        error = str(exc)
                    finally:
                        await pool.close()
                yield Outcome(conversation, error, time.monotonic() - started)
    finally:
        await redis.aclose()


def _run_all(
    conversations: list[Conversation], menus: MenuRegistry, data_dir: Path | None
) -> list[Outcome]:
    outcomes: list[Outcome] = []

    async def main(redis_url: str, database_url: str) -> None:
        async for outcome in run_standalone(
            conversations, redis_url=redis_url, database_url=database_url, menus=menus
        ):
            status = "ok  " if outcome.error is None else "FAIL"
            click.echo(f"{status} {outcome.conversation.file.name}::{outcome.conversation.test_id}")
            outcomes.append(outcome)

    with sandbox_servers(data_dir) as (redis_url, database_url):
        asyncio.run(main(redis_url, database_url))
    return outcomes


@click.command("test-conversations")
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--menu",
    "menu_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=Path("menu_definitions.yaml"),
    show_default=True,
    help="The menu file to test.",
)
@click.option("-k", "pattern", help="Only conversations whose id matches (glob or substring).")
@click.option(
    "--gateway",
    type=click.Choice([d.name for d in DIALECTS if d.session or d.sms_client]),
    help="Run the conversations of this gateway's channel over it instead.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded servers run (default: a temporary directory).",
)
def test_conversations(
    files: tuple[Path, ...],
    menu_file: Path,
    pattern: str | None,
    gateway: str | None,
    data_dir: Path | None,
) -> None:
    """Run conversation tests (default: tests/conversations/*.yaml) on embedded servers."""
    configure_logging(RUNNER_LOG_LEVEL, stream=sys.stderr)
    paths = discover(list(files) or [DEFAULT_CONVERSATIONS])
    if not paths:
        raise click.UsageError("no conversation files found")
    try:
        conversations = [c for p in paths for c in load_file(p)]
    except ConversationFileError as exc:
        raise click.ClickException(str(exc)) from None
    if gateway is not None:
        conversations = over_gateway(conversations, gateway)
    conversations = select(conversations, pattern)
    try:
        menus = load_menus(menu_file)
    except MenuError as exc:
        raise click.ClickException(f"{menu_file}: the menu does not load: {exc}") from None
    outcomes = _run_all(conversations, menus, data_dir)
    failed = [o for o in outcomes if o.error is not None]
    for outcome in failed:
        click.echo("\n" + "=" * 72 + "\n" + (outcome.error or ""))
    seconds = sum(o.seconds for o in outcomes)
    click.echo(f"\n{len(outcomes) - len(failed)} passed, {len(failed)} failed in {seconds:.1f} s")
    if failed:
        sys.exit(1)
