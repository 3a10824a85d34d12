"""What the voice line says for one screen: the prompts, their voices, how keys are taken.

A screen is said as: the error (after an invalid input), the title, one
sentence per option (``ivr_option``; an option in another language is said in
that language, by that language's voice), the next-page option, then once per
screen the navigation keys (``ivr_keys``, on menus and lists) or, where digits
are typed, how to end them (``ivr_input``). ``ivr_keys`` and ``ivr_input`` are
optional texts: a menu without them says neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from menus.screen import Handoff, IvrHints, Page, Prompt, Screen

if TYPE_CHECKING:
    from menus.hop import Hop
    from menus.model import Node

# Optional texts of the menu file for the voice line.
IVR_KEYS = "ivr_keys"
IVR_INPUT = "ivr_input"


def _entries(hop: Hop, node: Node, page: Page) -> list[Prompt]:
    """One prompt per entry of the page: read as it is, or "for X, press N"."""
    menu, language = hop.menu, hop.state.language
    ivr = menu.model.channels.ivr
    option_text = menu.texts["ivr_option"]
    prompts: list[Prompt] = []
    read_only = node.reads_entries()
    for position, index in enumerate(page.entries):
        if read_only:
            prompts.append(Prompt(hop.labels[index]))
            continue
        key = hop.keys[index] if hop.keys else str(position + 1)
        scope = {"label": hop.labels[index], "key": key}
        said_in = hop.entry_languages.get(index, language)
        text = option_text.render_voice(said_in, scope)
        if said_in == language:
            prompts.append(Prompt(text))
        else:
            voice = ivr.voice.get(said_in, "")
            prompts.append(Prompt(text, None, voice, ivr.language_codes.get(said_in, said_in)))
    return prompts


def _guide(hop: Hop, node: Node, final: bool) -> Prompt | None:
    """The keys of this screen, said once: navigation on menus, '#' after digits."""
    texts, state = hop.menu.texts, hop.state
    if final:
        return None
    if node.announces_keys and IVR_KEYS in texts:
        back = "yes" if state.breadcrumb or state.page > 0 else "no"
        return Prompt(texts[IVR_KEYS].render_voice(state.language, {"back": back}))
    if not node.single_key and node.title() is not None and IVR_INPUT in texts:
        return Prompt(texts[IVR_INPUT].render_voice(state.language, {}))
    return None


def ivr_screen(
    hop: Hop, node: Node, page: Page, *, pages: int, final: bool, handoff: Handoff | None
) -> Screen:
    """The prompts of one IVR page and how to collect the next keys."""
    state, menu = hop.state, hop.menu
    language = state.language
    ivr = menu.model.channels.ivr
    prompts: list[Prompt] = []
    if hop.error:
        prompts.append(Prompt(hop.error))
    title = node.title()
    if title is not None:
        audio = menu.text(title).audio.get(language)
        if page.text or audio:
            prompts.append(Prompt(page.text, audio))
    prompts += _entries(hop, node, page)
    if state.page < pages - 1:
        more = menu.texts["more"].render_voice(language, {})
        scope = {"label": more, "key": ivr.navigation.more}
        prompts.append(Prompt(menu.texts["ivr_option"].render_voice(language, scope)))
    guide = _guide(hop, node, final)
    if guide is not None:
        prompts.append(guide)
    # Voice and language on every screen (a final one is spoken too); the
    # key-collection hints matter only when the caller is asked for keys.
    single = not final and node.single_key
    hints = IvrHints(
        num_digits=1 if single else None,
        finish_on_key="" if single else "#",
        timeout=ivr.input_timeout,
        voice=ivr.voice.get(language, ""),
        language_code=ivr.language_codes.get(language, language),
    )
    return Screen(
        node=state.node,
        text=" ".join(p.text for p in prompts if p.text),
        final=final,
        handoff=handoff,
        prompts=tuple(prompts),
        ivr=hints,
        page=state.page,
        pages=pages,
    )
