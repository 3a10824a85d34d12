"""Configuration validation and log masking."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from ussd_service.config import ConfigError, load_settings
from ussd_service.logs import configure_logging, mask_number


def test_defaults_and_overrides() -> None:
    settings = load_settings({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.embedded
    settings = load_settings({"USSD_PORT": "9000", "USSD_LOG_LEVEL": "DEBUG"}, port=9100)
    assert settings.port == 9100
    assert settings.log_level == "debug"
    both = load_settings({"REDIS_URL": "redis://h:6379/0", "DATABASE_URL": "postgresql://h/db"})
    assert not both.embedded


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"USSD_PORT": "eighty"}, "USSD_PORT"),
        ({"USSD_PORT": "70000"}, "USSD_PORT"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"USSD_LOG_FORMAT": "xml"}, "USSD_LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(env)


def test_provisioning_mode_reaches_the_ledger_rules() -> None:
    assert load_settings({}).ledger_settings().provisioning == "dev"
    external = load_settings({"USSD_PROVISIONING": "External"})
    assert external.ledger_settings().provisioning == "external"
    with pytest.raises(ConfigError, match="USSD_PROVISIONING"):
        load_settings({"USSD_PROVISIONING": "magic"})


def test_short_secrets_are_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"USSD_API_TOKEN": "hunter2"})
    assert "USSD_API_TOKEN" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "secret"),
    [
        ({"DATABASE_URL": "mysql://ussd:hunter2-pg@db.internal/ussd"}, "hunter2-pg"),
        ({"DATABASE_URL": "postgresql//ussd:hunter2-pg@db.internal/ussd"}, "hunter2-pg"),
        ({"REDIS_URL": "http://:hunter2-redis@cache:6379/0"}, "hunter2-redis"),
        ({"REDIS_URL": "tcp://cache/0?password=hunter2-redis"}, "hunter2-redis"),
        ({"REDIS_URL": "unix//u:hunter2-redis@[::1"}, "hunter2-redis"),
        ({"USSD_SMS_GATEWAY_URL": "ftp://kannel:hunter2-sms@gw/send"}, "hunter2-sms"),
    ],
)
def test_a_bad_url_is_never_echoed_with_its_password(env: dict[str, str], secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    message = str(info.value)
    (variable,) = env
    assert variable in message
    assert secret not in message
    assert "***" in message


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+79161234567", "+7916*****67"),
        ("79161234567", "7916*****67"),
        ("call +7 916 123-45-67 now", "call +7916*****67 now"),
        ("8 (916) 123 45 67", "8916*****67"),
        ("from=+447700900123", "from=+4477******23"),
    ],
)
def test_phone_numbers_are_masked(raw: str, masked: str) -> None:
    assert mask_number(raw) == masked


def test_short_numbers_stay_readable() -> None:
    assert mask_number("points=100 code *111*455# line 0890") == (
        "points=100 code *111*455# line 0890"
    )


def test_json_log_lines_mask_numbers_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    saved_handlers = logging.getLogger().handlers[:]
    configure_logging("info", "json")
    try:
        structlog.get_logger("t").info(
            "gift for +79161234567", sender="79031112233", nested={"to": ["+79161234567"]}
        )
        line = capsys.readouterr().out.strip().splitlines()[-1]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = saved_handlers
    event = json.loads(line)
    assert event["event"] == "gift for +7916*****67"
    assert event["sender"] == "7903*****33"
    assert event["nested"] == {"to": ["+7916*****67"]}
    assert "1234567" not in line
