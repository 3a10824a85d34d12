"""Menu files as the service loads them: a file the service cannot run is refused at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from menus import MenuError
from ussd_service.menu_files import SMS_REPLIES, check_menu_file, load_menus

MENU_FILE = Path(__file__).resolve().parents[1] / "menu_definitions.yaml"


def _without(tmp_path: Path, line_start: str) -> Path:
    lines = MENU_FILE.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(line_start)]
    assert len(kept) == len(lines) - 1, line_start
    path = tmp_path / "menu.yaml"
    path.write_text("".join(kept), encoding="utf-8")
    return path


def test_the_shipped_menu_has_everything_the_service_needs() -> None:
    assert check_menu_file(MENU_FILE) == []
    assert "balance" in SMS_REPLIES


def test_a_missing_sms_reply_is_refused_at_load_and_on_reload(tmp_path: Path) -> None:
    broken = _without(tmp_path, "    no_pending_gift:")
    findings = [d.message for d in check_menu_file(broken)]
    assert "the service's SMS reply 'no_pending_gift' is missing from sms.replies" in findings
    with pytest.raises(MenuError, match="SMS reply 'no_pending_gift'"):
        load_menus(broken)
    registry = load_menus(MENU_FILE)
    live = registry.current.version
    with pytest.raises(MenuError):
        registry.reload(broken)
    assert registry.current.version == live
