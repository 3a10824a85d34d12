"""``ussd-service screens``: the screens book, every screen subscribers read or hear.

One Markdown document renders every node of the menu file that shows
something, in every language: each USSD page with its size and encoding (and
the page after a wrong key), the voice line's prompts as they are spoken (with
the voice of a prompt said in another language, and what the line waits for),
one variant per branch of a ``select`` in the text, then every SMS reply and
notification with its length. Sample values are fixed (dates too), so the book
changes only when the menu does: committed as ``docs/screens.md`` and checked
by the tests, a menu change becomes a diff of what subscribers read.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
from ruamel.yaml import YAML

import ledger
from menus import Menu, MenuError, OperationResult, SessionState, render_sms
from menus.gsm import measure
from menus.limits import SMS_MAX_GSM7, SMS_MAX_UCS2
from menus.screen import Screen
from menus.text import Placeholder, placeholders
from ussd_service.config import load_settings
from ussd_service.menu_files import load_menus

BOOK = Path("docs") / "screens.md"
FRIEND = "+79162000002"
OTHER = "+79303000003"
# A wrong key on every screen that takes keys (no menu offers it).
WRONG_KEY = "x"
MAX_PAGES = 30
SETTINGS = ledger.DEFAULT_SETTINGS


def _variables() -> dict[str, Any]:
    """What the session holds at any screen of the book (results kept with save_as)."""
    return {
        "sub": {"status": "active", "language": "ru", "code": "ok"},
        "bal": {
            "available": 1250,
            "pending_in": 40,
            "pending_out": 0,
            "expiring_points": 300,
            "expiring_date": "2027-11-30",
            "code": "ok",
        },
        "chk": {
            "recipient": FRIEND,
            "minimum": SETTINGS.gift_min_points,
            "maximum": SETTINGS.gift_max_points,
            "available": 1250,
            "allowance": SETTINGS.gift_daily_cap_points,
            "code": "ok",
        },
        "recipient": FRIEND,
        "points": 150,
        "category": "minutes",
        "reward_code": "min-50",
        "price": 150,
        "red": {"available": 1100, "price": 150, "code": "ok"},
        "gift": {"expires_at": "2026-05-15T10:00:00+03:00", "available": 1100, "code": "ok"},
        "gift_id": 7,
        "gift_points": 40,
        "gift_sender": FRIEND,
        "acc": {"available": 1290, "points": 40, "code": "ok"},
        "dec": {"points": 40, "code": "ok"},
        "sent_to": FRIEND,
        "can": {"available": 1290, "points": 40, "recipient": FRIEND, "code": "ok"},
    }


# Screens shown only when the values say so: the values that lead there.
NODE_VARIABLES: Mapping[str, Mapping[str, Any]] = {
    "balance": {"bal": {"available": 0, "pending_in": 40, "expiring_points": 0}},
    "redeem_short": {"red": {"available": 100, "price": 150}},
    "gift_short": {"gift": {"available": 100}},
    "gift_too_few": {"chk": {"available": 5}},
    "gift_amount_cap": {"chk": {"allowance": 1000}},
}
SMS_VARIABLES: Mapping[str, Any] = {
    "points": 150,
    "available": 1250,
    "pending_in": 40,
    "expiring_points": 300,
    "expiring_date": "2027-11-30",
    "expires_at": "2026-05-15T10:00:00+03:00",
    "sender": FRIEND,
    "recipient": FRIEND,
    "remaining": 1,
    "minimum": SETTINGS.gift_min_points,
    "maximum": SETTINGS.gift_max_points,
    "cap": SETTINGS.gift_daily_cap_points,
    "allowance": 1000,
    "reward_title": "50 SMS",
    "code": "123456",
    "minutes": 5,
}


# One movement of every kind, newest first: kind, points, counterparty, reward.
HISTORY = (
    ("gift_received", 20, FRIEND, None),
    ("gift_returned", 11, OTHER, None),
    ("gift_sent", -11, OTHER, None),
    ("redemption_refund", 80, None, "50 SMS"),
    ("redemption", -80, None, "50 SMS"),
    ("expiry", -5, None, None),
    ("accrual", 700, None, None),
)


def _history() -> list[dict[str, Any]]:
    day = "2026-05-12T10:00:00+03:00"
    return [
        {"kind": k, "points": p, "amount": abs(p), "created_at": day, "counterparty": c}
        | {"reward": r}
        for k, p, c, r in HISTORY
    ]


def _catalog(language: str, category: str | None) -> list[dict[str, Any]]:
    """The shipped catalogue (ledger/catalog.yaml), titles in ``language``."""
    rewards = YAML(typ="safe").load(Path(ledger.DEFAULT_CATALOG).read_text(encoding="utf-8"))
    return [
        {
            "code": r["code"],
            "title": r["title"].get(language) or r["title"][SETTINGS.default_language],
            "price": r["price"],
            "category": r["category"],
        }
        for r in rewards["rewards"]
        if category is None or r["category"] == category
    ]


class SampleOperations:
    """The operations port answered with the book's sample data (read-only ones only)."""

    def __init__(self, language: str) -> None:
        self.language = language

    async def __call__(self, name: str, args: Mapping[str, Any]) -> OperationResult:
        if name == "history":
            return OperationResult("ok", {"items": _history()})
        if name == "catalog":
            category = args.get("category") or None
            return OperationResult("ok", {"items": _catalog(self.language, category)})
        if name == "pending_gifts":
            items = [
                {"gift_id": 7, "sender": FRIEND, "points": 40},
                {"gift_id": 8, "sender": OTHER, "points": 1},
            ]
            return OperationResult("ok", {"items": items, "count": len(items)})
        if name == "sent_gifts":
            until = "2026-05-15T10:00:00+03:00"
            items = [
                {"gift_id": 9, "recipient": FRIEND, "points": 40, "expires_at": until},
                {"gift_id": 10, "recipient": OTHER, "points": 1, "expires_at": until},
            ]
            return OperationResult("ok", {"items": items, "count": len(items)})
        return OperationResult("ok", {})


# -- one node ---------------------------------------------------------------------------


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _set(scope: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    extra: dict[str, Any] = {leaf: value}
    for part in reversed(parents):
        extra = {part: extra}
    return _merge(scope, extra)


def _selects(menu: Menu, node_id: str) -> list[Placeholder]:
    """The ``select`` placeholders of a node's title that read session values."""
    title = menu.nodes[node_id].title()
    if title is None:
        return []
    found: dict[str, Placeholder] = {}
    for segments in menu.text(title).templates.values():
        for ph in placeholders(segments):
            if ph.format == "select" and not ph.path.startswith(("item.", "session.")):
                found.setdefault(ph.path, ph)
    return list(found.values())


def _variants(menu: Menu, node_id: str, language: str) -> list[tuple[str, dict[str, Any]]]:
    """The session values to show the node with: one set per branch of its selects."""
    scope = _merge(_variables(), NODE_VARIABLES.get(node_id, {}))
    title = next((r["title"] for r in _catalog(language, "minutes")), "")
    scope = _merge(scope, {"reward_title": title, "red": {"reward_title": title}})
    variants = [("", scope)]
    for ph in _selects(menu, node_id):
        variants = [
            (
                f"{label}{ph.path} = {key if key != 'other' else 'anything else'}; ",
                _set(s, ph.path, key),
            )
            for label, s in variants
            for key in ph.branches
        ]
    return [(label.rstrip("; "), s) for label, s in variants]


def _first_screens(menu: Menu, channel: str) -> set[str]:
    """Screens a session can open on (from the entry, through nodes that show nothing):
    shown there without a way back. Every other screen is shown reached from home."""
    entry = menu.model.entry.ivr if channel == "ivr" else menu.model.entry.ussd
    if entry is None:
        return set()
    seen, queue, first = {entry.start}, [entry.start], set()
    while queue:
        node_id = queue.pop()
        if menu.nodes[node_id].title() is not None:
            first.add(node_id)
            continue
        for edge in menu.edges(node_id):
            if edge.target not in seen:
                seen.add(edge.target)
                queue.append(edge.target)
    return first | {menu.home("ivr" if channel == "ivr" else "ussd")}


def _state(
    menu: Menu, node_id: str, language: str, channel: Any, scope: dict[str, Any]
) -> SessionState:
    state = SessionState(menu.version, node_id, language, channel, variables=scope)
    if node_id not in _first_screens(menu, channel):
        state.breadcrumb = [menu.home(channel)]
    return state


def _size(text: str, menu: Menu) -> str:
    size = measure(text)
    ussd = menu.model.channels.ussd
    limit = ussd.max_gsm7 if size.gsm7 else ussd.max_ucs2
    encoding = "GSM-7" if size.gsm7 else "UCS-2"
    return f"{size.units} chars, {encoding}, limit {limit}"


def _block(text: str) -> list[str]:
    return ["```text", *text.split("\n"), "```", ""]


async def _pages(menu: Menu, state: SessionState, ops: SampleOperations) -> list[Screen]:
    """Every page of the screen at ``state`` (the "more" key pressed until the last)."""
    nav = menu.model.channels.ivr if state.channel == "ivr" else menu.model.channels.ussd
    result = await menu.show(state, ops)
    shown = [result.screen]
    while result.screen.page < min(result.screen.pages - 1, MAX_PAGES):
        result = await menu.step(result.state, nav.navigation.more, ops)
        shown.append(result.screen)
    return shown


def _where(screen: Screen, sep: str) -> str:
    return f"page {screen.page + 1} of {screen.pages}{sep}" if screen.pages > 1 else ""


async def _ussd(menu: Menu, node_id: str, language: str, scope: dict[str, Any]) -> list[str]:
    ops = SampleOperations(language)
    state = _state(menu, node_id, language, "ussd", scope)
    out: list[str] = []
    for screen in await _pages(menu, state, ops):
        status = "END" if screen.final else "CON"
        head = f"USSD, {_where(screen, ' · ')}{status} · {_size(screen.text, menu)}"
        out += [head, "", *_block(screen.text)]
    if not screen.final:
        text = (await menu.step(state, WRONG_KEY, ops)).screen.text
        out += [f"USSD, after a wrong key · {_size(text, menu)}", "", *_block(text)]
    return out


def _said(screen: Screen) -> list[str]:
    lines = []
    for prompt in screen.prompts:
        text = f"(play {prompt.audio}) {prompt.text}" if prompt.audio else prompt.text
        voice = f"   [{prompt.voice}, {prompt.language_code}]" if prompt.voice else ""
        lines += [line + voice for line in text.split("\n")]
    return lines


def _waits(screen: Screen) -> str:
    if screen.handoff is not None:
        return "then transfers the call to an operator"
    if screen.final:
        return "then hangs up"
    hints = screen.ivr
    return "waits for 1 key" if hints and hints.num_digits == 1 else "waits for digits, then #"


async def _voice(menu: Menu, node_id: str, language: str, scope: dict[str, Any]) -> list[str]:
    if menu.model.entry.ivr is None:
        return []
    state = _state(menu, node_id, language, "ivr", scope)
    out: list[str] = []
    for screen in await _pages(menu, state, SampleOperations(language)):
        hints = screen.ivr
        voice = f"{hints.voice}, {hints.language_code}" if hints else ""
        head = f"Voice, {_where(screen, ', ')}{voice}; {_waits(screen)}"
        out += [head, "", *_block("\n".join(_said(screen)))]
    return out


def _ways_out(menu: Menu, node_id: str) -> str:
    return ", ".join(f"{edge.label} → `{edge.target}`" for edge in menu.edges(node_id))


async def _node(menu: Menu, node_id: str) -> list[str]:
    node = menu.nodes[node_id]
    out = [f"### `{node_id}` · {node.kind}", ""]
    if node.title() is None:
        # Acts without showing anything (an action, a route).
        operation = getattr(node, "operation", None)
        runs = f"Runs `{operation}`; " if operation else ""
        return [*out, f"{runs}{_ways_out(menu, node_id)}.", ""]
    for language in menu.model.languages:
        for label, scope in _variants(menu, node_id, language):
            out += [f"#### {language}{f' · {label}' if label else ''}", ""]
            out += await _ussd(menu, node_id, language, scope)
            out += await _voice(menu, node_id, language, scope)
    return out


# -- SMS --------------------------------------------------------------------------------


def _sms_variants(menu: Menu, name: str, language: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The sample values, then one set per exact plural branch (``=0``) of the text."""
    sms = menu.model.sms
    text = sms.replies.get(name) or sms.notifications.get(name)
    assert text is not None
    scope = dict(SMS_VARIABLES)
    yield "", scope
    source = menu.text(text).templates[language]
    for ph in placeholders(source):
        for branch in ph.branches:
            if ph.format == "plural" and branch.startswith("="):
                yield f"{ph.path} = {branch[1:]}", {**scope, ph.path: int(branch[1:])}


def _sms(menu: Menu) -> list[str]:
    out = ["## SMS", ""]
    sms = menu.model.sms
    for group, names in (("Replies", sms.replies), ("Notifications", sms.notifications)):
        out += [f"### {group}", ""]
        for name in names:
            out += [f"#### `{name}`", ""]
            for language in menu.model.languages:
                for label, scope in _sms_variants(menu, name, language):
                    text = render_sms(menu, name, language, scope)
                    size = measure(text)
                    limit = SMS_MAX_GSM7 if size.gsm7 else SMS_MAX_UCS2
                    parts = "1 SMS" if size.units <= limit else "several SMS"
                    encoding = "GSM-7" if size.gsm7 else "UCS-2"
                    what = f"{language}{f' · {label}' if label else ''}"
                    out += [f"{what} · {size.units} chars, {encoding}, {parts}", "", *_block(text)]
    return out


# -- the book ---------------------------------------------------------------------------


async def render_book(menu: Menu, source: str = "menu_definitions.yaml") -> str:
    """The whole book for ``menu`` as Markdown (deterministic: sample values are fixed)."""
    out = [
        "# Screens book",
        "",
        f"Every screen of `{source}` as subscribers read and hear it, in every language: "
        "USSD pages with their size and encoding (and the page after a wrong key), the "
        "voice line's prompts as spoken, SMS replies and notifications. Generated by "
        "`ussd-service screens --output docs/screens.md` from fixed sample values; "
        "do not edit by hand (a test fails when it is stale).",
        "",
        "## USSD and voice",
        "",
    ]
    for node_id in menu.nodes:
        out += await _node(menu, node_id)
    out += _sms(menu)
    return "\n".join(out).rstrip() + "\n"


@click.command()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the book to this file (default: standard output).",
)
@click.option(
    "--menu",
    "menu_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Menu file (default: the service's, menu_definitions.yaml).",
)
def screens(output: Path | None, menu_file: Path | None) -> None:
    """Render every screen of every node, both languages, every channel, as Markdown."""
    path = menu_file or load_settings(env={}).menu_file
    try:
        menu = load_menus(path).current
    except MenuError as exc:
        raise click.ClickException(f"{path}: the menu does not load: {exc}") from None
    book = asyncio.run(render_book(menu, path.name))
    if output is None:
        click.echo(book, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(book, encoding="utf-8")
        click.echo(f"{output}: {book.count(chr(10))} lines", err=True)
