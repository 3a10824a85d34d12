"""Every text of the pages in both languages, and every key the pages use exists."""

from __future__ import annotations

import re
from pathlib import Path

from ussd_service.web.texts import LANGUAGES, catalogue

WEB = Path(__file__).resolve().parents[2] / "ussd_service" / "web"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("key") / t.plural("key") / t.has("key") with a literal key, in templates and modules.
_USED = re.compile(r"""\bt(?:\.plural|\.has)?\(\s*["']([a-z_.]+)["']""")


def _placeholders(text: object) -> set[str]:
    if isinstance(text, dict):
        return set().union(*(_placeholders(v) for v in text.values()))
    return set(_PLACEHOLDER.findall(str(text)))


def test_each_text_has_every_language_with_the_same_placeholders() -> None:
    for key, texts in catalogue().items():
        assert set(texts) == set(LANGUAGES), key
        assert _placeholders(texts["ru"]) == _placeholders(texts["en"]), key


def test_every_key_the_pages_use_exists() -> None:
    known = set(catalogue())
    sources = [*WEB.rglob("*.html"), *WEB.glob("*.py")]
    used = {key for path in sources for key in _USED.findall(path.read_text("utf-8"))}
    assert used, "no keys found: the pattern is broken"
    # Keys ending in "." or "_" are prefixes a page completes (t("categories." ~ name)).
    missing = sorted(k for k in used if k not in known and not k.endswith((".", "_")))
    assert missing == []
