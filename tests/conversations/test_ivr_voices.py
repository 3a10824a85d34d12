"""Each prompt in its own language's voice: "For English, press 2" is not read by
the Russian voice. The menu marks the prompt; the TwiML says it with that voice."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from menus import Menu, OperationResult
from ussd_service.channels.twilio import twiml
from ussd_service.channels.voicexml import Call, vxml
from ussd_service.menu_files import load_menus
from ussd_service.replies import dump_screen, load_screen

MENU_FILE = Path(__file__).resolve().parents[2] / "menu_definitions.yaml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


class _Ops:
    async def __call__(self, name: str, args: object) -> OperationResult:
        return OperationResult("ok", {"status": "active", "language": "ru"})


@pytest.fixture(scope="module")
def menu() -> Menu:
    return load_menus(MENU_FILE).current


async def _language_menu(menu: Menu) -> object:
    result = await menu.start("ivr", _Ops(), language="ru")
    return (await menu.step(result.state, "6", _Ops())).screen


async def test_each_language_option_in_its_own_voice(menu: Menu) -> None:
    screen = await _language_menu(menu)
    voices = {p.text: (p.voice, p.language_code) for p in screen.prompts}  # type: ignore[attr-defined]
    assert voices["For English, press 2."] == ("Polly.Joanna", "en-US")
    # The caller's own language needs no override: the screen's voice speaks it.
    assert voices["Русский — нажмите 1."] == ("", "")


async def test_twiml_says_each_prompt_with_its_voice(menu: Menu) -> None:
    screen = await _language_menu(menu)
    root = ET.fromstring(twiml(screen, seq=2))  # type: ignore[arg-type]
    says = {el.text: (el.get("voice"), el.get("language")) for el in root.iter("Say")}
    assert says["For English, press 2."] == ("Polly.Joanna", "en-US")
    assert says["Русский — нажмите 1."] == ("Polly.Tatyana", "ru-RU")


async def test_voicexml_marks_the_prompt_language(menu: Menu) -> None:
    screen = await _language_menu(menu)
    call = Call(session="c1", caller="+79161000001", called="0890")
    root = ET.fromstring(vxml(screen, seq=2, call=call))  # type: ignore[arg-type]
    prompts = {
        "".join(el.itertext()).strip(): el.get(XML_LANG)
        for el in root.iter("{http://www.w3.org/2001/vxml}prompt")
    }
    assert prompts["For English, press 2."] == "en-US"
    assert prompts["Русский — нажмите 1."] is None  # the document's language, ru-RU


async def test_a_replayed_screen_keeps_the_voices(menu: Menu) -> None:
    """A gateway's retry gets the stored screen: its prompts keep their voices."""
    screen = await _language_menu(menu)
    again, _ = load_screen(dump_screen(screen, None))  # type: ignore[arg-type]
    assert again.prompts == screen.prompts  # type: ignore[attr-defined]
