"""Screens stored as compact JSON, so a retried hop gets the very same reply."""

from __future__ import annotations

import json
from typing import Any

from menus.engine import Menu
from menus.screen import Handoff, IvrHints, Prompt, Screen


def dump_screen(screen: Screen, handoff_id: int | None) -> str:
    """The screen (and its handoff id) as compact JSON for the session record."""
    data: dict[str, Any] = {"n": screen.node, "t": screen.text}
    if screen.final:
        data["f"] = 1
    if screen.handoff is not None:
        data["h"] = [screen.handoff.reason, screen.handoff.destination]
    if handoff_id is not None:
        data["hid"] = handoff_id
    if screen.prompts:
        data["p"] = [_prompt(p) for p in screen.prompts]
    if screen.ivr is not None:
        hints = screen.ivr
        data["i"] = [
            hints.num_digits,
            hints.finish_on_key,
            hints.timeout,
            hints.voice,
            hints.language_code,
        ]
    if screen.pages > 1:
        data["pg"] = [screen.page, screen.pages]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _prompt(prompt: Prompt) -> list[str | None]:
    """A prompt as a short list: text, then audio, voice and language only when set."""
    fields = [prompt.text, prompt.audio, prompt.voice, prompt.language_code]
    while len(fields) > 1 and not fields[-1]:
        fields.pop()
    return fields


def load_screen(raw: str) -> tuple[Screen, int | None]:
    """The screen and handoff id ``dump_screen`` wrote."""
    data = json.loads(raw)
    handoff = Handoff(*data["h"]) if "h" in data else None
    prompts = tuple(Prompt(*p) for p in data.get("p", ()))
    ivr = IvrHints(*data["i"]) if "i" in data else None
    page, pages = data.get("pg", (0, 1))
    screen = Screen(
        node=data["n"],
        text=data["t"],
        final=bool(data.get("f")),
        handoff=handoff,
        prompts=prompts,
        ivr=ivr,
        page=page,
        pages=pages,
    )
    return screen, data.get("hid")


def system_screen(menu: Menu, name: str, channel: str) -> Screen:
    """A final screen with one of the dialogue's own texts, in the menu's default language."""
    language = menu.model.default_language
    compiled = menu.texts[name]
    if channel != "ivr":
        return Screen(node=name, text=compiled.render(language, {}), final=True)
    spoken = compiled.render_voice(language, {})
    ivr = menu.model.channels.ivr
    # Spoken in the menu's voice for its language, like every other screen.
    hints = IvrHints(
        num_digits=None,
        finish_on_key="#",
        timeout=ivr.input_timeout,
        voice=ivr.voice.get(language, ""),
        language_code=ivr.language_codes.get(language, language),
    )
    return Screen(node=name, text=spoken, final=True, prompts=(Prompt(spoken),), ivr=hints)
