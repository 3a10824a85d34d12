"""Texts and conditions of a menu, parsed once at load time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from menus.fields import LocalText, Text
from menus.text import Segment, parse_template, placeholders, render

# Texts every menu file defines in `texts`: the engine's own words.
REQUIRED_TEXTS = ("more", "back", "yes", "no", "invalid_input", "ivr_option")


@dataclass(frozen=True)
class CompiledText:
    """A text in every language: parsed templates, IVR wording and audio files."""

    name: str
    templates: Mapping[str, tuple[Segment, ...]]
    voice: Mapping[str, tuple[Segment, ...]]
    audio: Mapping[str, str]

    def render(self, language: str, scope: Mapping[str, Any]) -> str:
        """The text for screens (USSD, SMS) in ``language``."""
        return render(self.templates[language], scope, language)

    def render_voice(self, language: str, scope: Mapping[str, Any]) -> str:
        """The text for text-to-speech: the IVR wording when given, else the screen text.

        Values are rendered to be said (dates in words, whole numbers).
        """
        segments = self.voice.get(language) or self.templates[language]
        return render(segments, scope, language, voice=True)

    @property
    def static(self) -> bool:
        """True when no language's text has a placeholder."""
        return not any(placeholders(t) for t in self.templates.values())


def resolve(text: Text, texts: Mapping[str, LocalText]) -> tuple[str, LocalText | None]:
    """The reusable text a bare string names (or the inline text itself), with its name."""
    if isinstance(text, str):
        return text, texts.get(text)
    return "", text


def compile_text(local: LocalText, name: str = "") -> CompiledText:
    """Parse every language of ``local``; raises TemplateError on a bad template."""
    extra = local.model_extra or {}
    return CompiledText(
        name=name,
        templates={lang: parse_template(src) for lang, src in extra.items()},
        voice={lang: parse_template(src) for lang, src in (local.ivr or {}).items()},
        audio=dict(local.audio or {}),
    )
