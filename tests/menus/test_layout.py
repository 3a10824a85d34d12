"""Dense USSD pages: filled up to the limit, a short menu in two pages, and an
error that never hides an option."""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from menu_harness import MINI, OPERATIONS, write

from menus import validate_file
from menus.screen import PageLimits, paginate, with_error

ERROR = "Ошибка ввода."
RU = PageLimits(
    max_gsm7=182, max_ucs2=80, more_line="99. Ещё", back_line="0. Назад", error_line=ERROR
)
LABELS = st.lists(st.text("абвгд ежзий", min_size=1, max_size=30).map(str.strip), max_size=20)


@given(header=st.text("Награды ", max_size=30), entries=LABELS)
def test_each_page_is_filled_before_the_next(header: str, entries: list[str]) -> None:
    entries = [e or "ж" for e in entries]
    pages = paginate(header, entries, RU, back=True, key=lambda p, _i: str(p + 1))
    for page, following in itertools.pairwise(pages):
        assert RU.fits(page.text)
        if not page.entries or not following.entries or len(page.entries) >= RU.max_entries:
            continue  # nothing to compare, or as many keys as a page takes
        # The next page's first entry would not have fitted on this one (with
        # room for an error line in place of the title and the hints).
        lines = page.text.split("\n")
        first = f"{len(page.entries) + 1}. {entries[following.entries[0]]}"
        options = [*lines[page.header_lines : -2], first]
        fuller = "\n".join([*lines[:-2], first, *lines[-2:]])
        assert not (RU.fits(fuller) and RU.fits("\n".join([ERROR, *options])))


@given(entries=LABELS)
def test_an_error_never_hides_an_option(entries: list[str]) -> None:
    entries = [e or "ж" for e in entries]
    pages = paginate("Награды", entries, RU, back=True, key=lambda p, _i: str(p + 1))
    for page in pages:
        shown = with_error(ERROR, page, RU)
        options = [line for line in page.text.split("\n") if line[:1].isdigit()]
        options = [line for line in options if line not in (RU.more_line, RU.back_line)]
        assert all(option in shown.split("\n") for option in options), (page.text, shown)
        assert RU.fits(shown)


def test_a_seven_option_menu_fits_two_pages(tmp_path: Path) -> None:
    long = "Очень длинное название пункта"
    options = "\n".join(
        f'      - {{key: "{k}", label: {{ru: "{long} {k}", en: "Item {k}"}}, target: operator}}'
        for k in range(3, 8)
    )
    menu = MINI.replace(
        '      - {key: "2", label: {ru: "Оператор", en: "Operator"}, target: operator}',
        '      - {key: "2", label: {ru: "Оператор", en: "Operator"}, target: operator}\n' + options,
    )
    found = validate_file(write(tmp_path, menu), operations=OPERATIONS)
    messages = [d.message for d in found if d.level == "error"]
    assert any("7 options take" in m and "at most 2: shorten the labels" in m for m in messages)
    assert not any("en:" in m for m in messages)
