"""Service settings from environment variables and ``serve`` flags, validated at start."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

import ledger

# Environment variable for each setting (names from shared/INTERFACES.md).
ENV_VARS: Mapping[str, str] = {
    "host": "USSD_HOST",
    "port": "USSD_PORT",
    "menu_file": "USSD_MENU_FILE",
    "data_dir": "USSD_DATA_DIR",
    "redis_url": "REDIS_URL",
    "database_url": "DATABASE_URL",
    "api_token": "USSD_API_TOKEN",
    "gateway_secret": "USSD_GATEWAY_SECRET",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "log_level": "USSD_LOG_LEVEL",
    "log_format": "USSD_LOG_FORMAT",
    "provisioning": "USSD_PROVISIONING",
    "public_url": "USSD_PUBLIC_URL",
    # SMS on 4555: the operator's SMS gateway (Kannel ``sendsms`` convention)
    # and the notification delivery worker.
    "sms_gateway_url": "USSD_SMS_GATEWAY_URL",
    "sms_gateway_username": "USSD_SMS_GATEWAY_USERNAME",
    "sms_gateway_password": "USSD_SMS_GATEWAY_PASSWORD",
    "sms_gateway_method": "USSD_SMS_GATEWAY_METHOD",
    "sms_gateway_timeout": "USSD_SMS_GATEWAY_TIMEOUT",
    "sms_sender": "USSD_SMS_SENDER",
    "notifier_batch": "USSD_NOTIFIER_BATCH",
    "notifier_interval": "USSD_NOTIFIER_INTERVAL",
    # Reminders of expiring points (ussd_service/reminders.py).
    "reminder_days": "USSD_REMINDER_DAYS",
    "reminder_batch": "USSD_REMINDER_BATCH",
    "reminder_interval": "USSD_REMINDER_INTERVAL",
    "reminder_hours": "USSD_REMINDER_HOURS",
    # Earning rules of POST /v1/events (ussd_service/earning_rules.py).
    "earning_rules_file": "USSD_EARNING_RULES_FILE",
}

_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
_POSTGRES_SCHEMES = frozenset({"postgres", "postgresql"})
_HTTP_SCHEMES = frozenset({"http", "https"})
# A send must finish well inside the outbox lease (ledger ``outbox_lease``, 60 s),
# or another worker could claim the message while it is still in flight.
MAX_SMS_GATEWAY_TIMEOUT_S = 30.0
MAX_NOTIFIER_BATCH = 1000
# A reminder further ahead than a year would be read as noise, not a warning.
MAX_REMINDER_DAYS = 365
MAX_REMINDER_BATCH = 10_000
# Settings whose value is a URL: echoed in errors only with credentials masked.
_URL_FIELDS = frozenset({"redis_url", "database_url", "public_url", "sms_gateway_url"})
_SECRET_FIELD_WORDS = ("secret", "token", "password")
# Query parameters that carry credentials (redis-py and libpq accept ``?password=``).
_SECRET_QUERY = re.compile(r"(?i)\b((?:pass(?:word)?|secret|token|key)=)[^&#]*")


class ConfigError(ValueError):
    """A setting has a bad value; the message names the variable and says why."""


class Settings(BaseModel):
    """Everything the service reads from its environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    menu_file: Path = Path("menu_definitions.yaml")
    data_dir: Path = Path("var")
    redis_url: str | None = None
    database_url: str | None = None
    api_token: str | None = None
    gateway_secret: str | None = None
    twilio_auth_token: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    # "dev": rewards are fulfilled at once by the built-in provisioner (development
    # only); "external": they stay reserved until /v1/redemptions/{id}/... answers.
    provisioning: Literal["dev", "external"] = "dev"
    # The service's address as gateways call it (behind a proxy); Twilio signs it.
    public_url: str | None = None
    # Unset: notifications are logged (numbers masked) instead of sent.
    sms_gateway_url: str | None = None
    sms_gateway_username: str | None = None
    sms_gateway_password: SecretStr | None = None
    sms_gateway_method: Literal["GET", "POST"] = "POST"
    sms_gateway_timeout: float = Field(default=10.0, gt=0, le=MAX_SMS_GATEWAY_TIMEOUT_S)
    sms_sender: str = Field(default="4555", min_length=1, max_length=16)
    notifier_batch: int = Field(default=50, ge=1, le=MAX_NOTIFIER_BATCH)
    # Seconds the worker waits when the outbox has nothing due.
    notifier_interval: float = Field(default=2.0, gt=0, le=3600)
    # Members are told of points expiring within this many days, once per lot
    # (0: no reminders).
    reminder_days: int = Field(default=14, ge=0, le=MAX_REMINDER_DAYS)
    # Lots claimed per reminder transaction; a full batch is followed by the next.
    reminder_batch: int = Field(default=500, ge=1, le=MAX_REMINDER_BATCH)
    # Seconds between reminder passes when nothing more is due.
    reminder_interval: float = Field(default=600.0, gt=0, le=86_400)
    # Local hours (programme time zone) reminders are sent in, "FROM-TO": none at night.
    reminder_hours: str = Field(default="10-21", pattern=r"^\d{1,2}-\d{1,2}$")
    # Accrual rules for POST /v1/events (a missing file: events are refused with a 503).
    earning_rules_file: Path = Path("earning_rules.yaml")

    @field_validator("public_url")
    @classmethod
    def _public_scheme(cls, value: str | None) -> str | None:
        checked = _check_scheme(value, frozenset({"http", "https"}))
        return checked.rstrip("/") if checked else checked

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        return _check_scheme(value, _REDIS_SCHEMES)

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str | None) -> str | None:
        return _check_scheme(value, _POSTGRES_SCHEMES)

    @field_validator("sms_gateway_url")
    @classmethod
    def _sms_gateway_scheme(cls, value: str | None) -> str | None:
        return _check_scheme(value, _HTTP_SCHEMES)

    @field_validator("sms_gateway_method", mode="before")
    @classmethod
    def _method_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("reminder_hours")
    @classmethod
    def _hours_in_a_day(cls, value: str) -> str:
        start, end = (int(part) for part in value.split("-"))
        if not 0 <= start < end <= 24:
            raise ValueError("must be FROM-TO hours with 0 <= FROM < TO <= 24, like 10-21")
        return value

    @property
    def reminder_window(self) -> tuple[int, int]:
        """The hours reminders go out in: [start, end) of the programme's local day."""
        start, end = (int(part) for part in self.reminder_hours.split("-"))
        return start, end

    @field_validator("api_token", "gateway_secret", "twilio_auth_token")
    @classmethod
    def _secret_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters long")
        return value

    def ledger_settings(self) -> ledger.LedgerSettings:
        """The ledger's rules as this service runs them."""
        return dataclasses.replace(ledger.DEFAULT_SETTINGS, provisioning=self.provisioning)

    @property
    def embedded(self) -> bool:
        """True when the service must start its own Redis and PostgreSQL."""
        return not (self.redis_url and self.database_url)


def _check_scheme(value: str | None, schemes: frozenset[str]) -> str | None:
    if value is None:
        return None
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        raise ValueError(f"must be a URL starting with one of {sorted(schemes)}")
    return value


def mask_url(url: str) -> str:
    """``url`` with its userinfo and secret query parameters replaced by ``***``.

    Works on malformed URLs too (no parsing that could fail): everything before
    the last ``@``, past the scheme, is taken for userinfo.
    """
    head, at, rest = url.rpartition("@")
    if at:
        scheme, slashes, _ = head.partition("//")
        url = f"{scheme}{slashes}***@{rest}" if slashes else f"***@{rest}"
    return _SECRET_QUERY.sub(r"\1***", url)


def _shown(field: str, value: Any) -> str:
    """How a refused value appears in the error: never a secret."""
    if any(word in field for word in _SECRET_FIELD_WORDS):
        return ""
    if field in _URL_FIELDS and isinstance(value, str):
        return f" (got {mask_url(value)!r})"
    return f" (got {value!r})"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from ``env`` (default: ``os.environ``), then non-None ``overrides``.

    Empty variables count as unset. Raises ``ConfigError`` naming the bad setting
    (its value is shown, secrets never and URLs with credentials masked).
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field, var in ENV_VARS.items():
        raw = env.get(var)
        if raw:
            lowered = field in {"log_level", "log_format", "provisioning"}
            values[field] = raw.lower() if lowered else raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = ENV_VARS.get(field, field)
            problems.append(f"{name}: {error['msg']}{_shown(field, error['input'])}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
