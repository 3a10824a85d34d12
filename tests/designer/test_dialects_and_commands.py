"""The tools speak any dialect of ussd_service/channels; the service finds them by entry point."""

from __future__ import annotations

import io
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import ledger
from designer.conversations import ConversationEnv, ConversationFileError, load_file
from designer.conversations.command import over_gateway
from designer.conversations.runner import run_conversation
from designer.simulator import PhoneError, SimulatorOptions, Terminal, serve_app, simulate_against
from ussd_service.cli import TOOL_COMMANDS_GROUP, main
from ussd_service.config import Settings

ROOT = Path(__file__).resolve().parents[2]
ME = "+79161000001"
TOOL_COMMANDS = {"simulate", "test-conversations", "graph", "report", "screens"}

TWO_GATEWAYS = """\
defaults: {channel: ussd, gateways: [africastalking, native], msisdn: "+79161000001"}
conversations:
  - name: main_menu
    given: {enrolled: true, balance: 5}
    steps:
      - dial
      - expect: "Бонусы"
      - send: "1"
      - expect: "Баланс: 5"
  - name: native_only
    gateway: native
    steps: [dial, hangup]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conversations.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_tool_commands_are_entry_points_of_the_service_command() -> None:
    names = {entry.name for entry in entry_points(group=TOOL_COMMANDS_GROUP)}
    assert names == TOOL_COMMANDS
    assert set(main.commands) >= TOOL_COMMANDS


def test_the_service_never_imports_designer() -> None:
    """Every ussd_service module but the command line loads without the designer package."""
    code = (
        "import pkgutil, importlib, sys, ussd_service\n"
        "for info in pkgutil.walk_packages(ussd_service.__path__, 'ussd_service.'):\n"
        "    if info.name != 'ussd_service.cli':\n"
        "        importlib.import_module(info.name)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'designer'], sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


def test_a_conversation_runs_over_every_gateway_it_names(tmp_path: Path) -> None:
    found = load_file(_write(tmp_path, TWO_GATEWAYS))
    assert [(c.test_id, c.gateway) for c in found] == [
        ("main_menu[ussd-africastalking-ru]", "africastalking"),
        ("main_menu[ussd-native-ru]", "native"),
        ("native_only[ussd-ru]", "native"),
    ]
    # The default dialect of each channel when none is named.
    plain = (
        'defaults: {channel: ivr, msisdn: "+79161000001"}\n'
        "conversations:\n  - name: call\n    steps: [dial, hangup]\n"
    )
    defaults = load_file(_write(tmp_path, plain))
    assert {c.gateway for c in defaults} == {"twilio"}
    # The shipped IVR conversations run over both voice dialects.
    shipped = load_file(ROOT / "tests" / "conversations" / "ivr.yaml")
    assert {c.gateway for c in shipped} == {"twilio", "voicexml"}


def test_gateways_are_checked_when_the_file_loads(tmp_path: Path) -> None:
    unknown = TWO_GATEWAYS.replace("[africastalking, native]", "[nowhere]")
    with pytest.raises(ConversationFileError, match=r":3: unknown gateway 'nowhere' \(known: "):
        load_file(_write(tmp_path, unknown))
    wrong = TWO_GATEWAYS.replace("[africastalking, native]", "[twilio]")
    with pytest.raises(ConversationFileError, match=r":3: gateway 'twilio' speaks ivr, not ussd"):
        load_file(_write(tmp_path, wrong))


def test_over_gateway_moves_only_its_channel() -> None:
    found = load_file(ROOT / "tests" / "conversations" / "navigation.yaml")
    moved = over_gateway(found, "native")
    assert {c.gateway for c in moved} == {"native"}
    assert len(moved) == len(found)
    assert moved[0].test_id.startswith(f"{found[0].name}[ussd-native-")
    ivr = load_file(ROOT / "tests" / "conversations" / "ivr.yaml")
    assert over_gateway(ivr, "native") == ivr


async def test_a_conversation_passes_over_a_named_gateway(
    settings: Settings, pg_pool, redis_client, tmp_path: Path
) -> None:
    over_native = load_file(_write(tmp_path, TWO_GATEWAYS))[1]
    assert over_native.gateway == "native"
    await run_conversation(over_native, ConversationEnv(settings, pg_pool))


async def test_simulator_speaks_the_gateway_it_is_given(
    settings: Settings, pg_pool, redis_client
) -> None:
    await ledger.enroll(pg_pool, ME, key="t-enroll")
    out = io.StringIO()
    term = Terminal(io.StringIO("\n1\n/hangup\nq\n"), out, interactive=False)
    options = SimulatorOptions(channel="ussd", msisdn=ME, gateway="native")
    async with serve_app(settings) as url:
        await simulate_against(url, options, term, pg_pool)
    output = out.getvalue()
    assert output.startswith("USSD phone (native).")
    assert "│Баланс: 0" in output
    assert "  (session ended by the handset)" in output


def test_a_gateway_of_another_channel_is_refused() -> None:
    with pytest.raises(PhoneError, match="the twilio gateway speaks ivr, not ussd"):
        SimulatorOptions(channel="ussd", gateway="twilio").dialect()
    assert SimulatorOptions(channel="ivr").dialect().name == "twilio"
    assert SimulatorOptions(channel="sms").dialect().name == "sms"
