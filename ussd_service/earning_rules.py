"""Earning rules: how events (top-ups, tenure, joining) turn into points.

The rules live in a YAML file (``earning_rules.yaml``, ``USSD_EARNING_RULES_FILE``)
checked like the menu file: the schema (pydantic, published as JSON Schema in
``earning_rules.schema.json``), then the checks that need more than one field
or the ledger's settings. Every finding is a ``Diagnostic`` with the file,
line and column of the YAML that caused it. A file with errors is refused
whole; the service never runs on half a rule set.

A rule grants, per event of its ``kind``:

* ``topup``: ``amount`` (roubles) x ``points_per_rouble``, rounded as the rule
  says (``down`` by default: 1 point per 10 roubles gives 15 points for
  159.90 roubles);
* ``tenure``: ``amount`` (whole months of tenure) x ``points_per_month``;
* ``joined``: ``points``, once per member.

The points expire at the end of the day ``validity_months`` after the event
(programme time zone). ``caps.per_event`` bounds one event's points,
``caps.per_month`` what the rule grants one member per calendar month of the
events (the ledger sums it under the member's lock).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

import ledger
from ledger.points import add_months
from menus.errors import Diagnostic
from menus.locate import Checker, Locator, read_yaml, schema_errors

log = structlog.get_logger(__name__)

SCHEMA_FILE = Path(__file__).with_name("earning_rules.schema.json")
SCHEMA_ID = "https://example.invalid/ussd-service/earning_rules.schema.json"
RULE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
# No programme promises points for longer; the ledger's own horizon is checked too.
MAX_VALIDITY_MONTHS = 120
MAX_POINTS = 10_000_000

_ROUNDING = {"down": ROUND_FLOOR, "half_up": ROUND_HALF_UP, "up": ROUND_CEILING}

Months = Annotated[
    int,
    Field(
        ge=1,
        le=MAX_VALIDITY_MONTHS,
        description="the points expire at the end of the day this many months after the event",
    ),
]
Points = Annotated[int, Field(gt=0, le=MAX_POINTS)]


class Caps(BaseModel):
    """Upper bounds of what a rule grants."""

    model_config = ConfigDict(extra="forbid")

    per_event: Points | None = Field(default=None, description="points of one event at most")
    per_month: Points | None = Field(
        default=None,
        description="points one member gets from this rule per calendar month of the events",
    )


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=200)
    validity_months: Months


class TopupRule(_Rule):
    """Points per rouble of a top-up."""

    kind: Literal["topup"]
    points_per_rouble: Decimal = Field(gt=0, le=1000, decimal_places=4)
    rounding: Literal["down", "half_up", "up"] = Field(
        default="down", description="how a fraction of a point is rounded (down: dropped)"
    )
    caps: Caps | None = None


class TenureRule(_Rule):
    """Points per month of tenure with the operator."""

    kind: Literal["tenure"]
    points_per_month: Points
    caps: Caps | None = None


class JoinedRule(_Rule):
    """A bonus for joining the programme, once per member."""

    kind: Literal["joined"]
    points: Points


Rule = Annotated[TopupRule | TenureRule | JoinedRule, Field(discriminator="kind")]
RuleName = Annotated[str, StringConstraints(pattern=RULE_NAME_PATTERN)]


class RulesFile(BaseModel):
    """The earning rules file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    rules: dict[RuleName, Rule] = Field(min_length=1)


class RulesError(Exception):
    """An earning rules file that cannot be used; ``diagnostics`` says where and why."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.level == "error"]
        first = str(errors[0]) if errors else "invalid earning rules"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that ``earning_rules.yaml`` follows."""
    schema = RulesFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Earning rules of the bonus-points programme"
    return schema


def schema_text() -> str:
    """``json_schema()`` as the text of the shipped schema file."""
    return json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def _semantic_checks(model: RulesFile, checker: Checker, settings: ledger.LedgerSettings) -> None:
    longest = settings.points_max_validity_months
    joined = [name for name, rule in model.rules.items() if rule.kind == "joined"]
    for name in joined[1:]:
        checker.report(
            ("rules", name, "kind"),
            f"rule '{name}': a second joining bonus (the first is '{joined[0]}'); "
            "a member gets one joining bonus",
        )
    for name, rule in model.rules.items():
        where = ("rules", name)
        # The expiry is the end of that day, so the month itself must stay
        # inside the ledger's horizon with a day to spare.
        if rule.validity_months >= longest:
            checker.report(
                (*where, "validity_months"),
                f"rule '{name}': validity_months must be less than the ledger's longest "
                f"validity ({longest} months)",
            )
        caps = getattr(rule, "caps", None)
        if caps and caps.per_event and caps.per_month and caps.per_event > caps.per_month:
            checker.report(
                (*where, "caps", "per_event"),
                f"rule '{name}': per_event ({caps.per_event}) is more than per_month "
                f"({caps.per_month})",
            )
    kinds = {rule.kind for rule in model.rules.values()}
    for kind in ledger.EVENT_KINDS:
        if kind not in kinds:
            checker.report(
                ("rules",), f"no rule for kind '{kind}': such events earn nothing", "warning"
            )


def validate_rules_text(
    text: str, file: str, settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS
) -> tuple[RulesFile | None, list[Diagnostic]]:
    """The model of a rules file's content (None on errors) and every finding, in line order."""
    checker = Checker(file, Locator(None))
    doc = read_yaml(text, checker)
    if checker.diagnostics:
        return None, checker.diagnostics
    checker.locator = Locator(doc)
    if not isinstance(doc, dict):
        message = "an earning rules file is a mapping (version, rules)"
        return None, [Diagnostic(file, 1, 1, "error", message)]
    try:
        model = RulesFile.model_validate(doc)
    except ValidationError as err:
        schema_errors(err, checker)
        return None, sorted(checker.diagnostics, key=lambda d: (d.line, d.col))
    _semantic_checks(model, checker, settings)
    diagnostics = sorted(checker.diagnostics, key=lambda d: (d.line, d.col))
    if any(d.level == "error" for d in diagnostics):
        return None, diagnostics
    return model, diagnostics


def check_rules_file(
    path: str | Path, settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS
) -> list[Diagnostic]:
    """Every finding for the rules file at ``path`` (errors and warnings)."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return [Diagnostic(str(path), 1, 1, "error", f"cannot read: {err}")]
    return validate_rules_text(text, str(path), settings)[1]


@dataclass(frozen=True)
class EarningRules:
    """A validated rule set and where it came from."""

    path: str
    model: RulesFile

    def grants(
        self,
        kind: ledger.EventKind,
        amount: Decimal,
        occurred_at: datetime,
        settings: ledger.LedgerSettings,
    ) -> list[ledger.Grant]:
        """What each rule of ``kind`` grants for the event, in file order, before ledger caps."""
        zone = ZoneInfo(settings.timezone)
        local = occurred_at.astimezone(zone)
        grants = []
        for name, rule in self.model.rules.items():
            if rule.kind != kind:
                continue
            day = add_months(local, rule.validity_months).date()
            expires_at = datetime.combine(day, time.max, tzinfo=zone)
            month_cap, note = None, None
            if isinstance(rule, JoinedRule):
                points = rule.points
            else:
                if isinstance(rule, TopupRule):
                    exact = amount * rule.points_per_rouble
                    points = int(exact.quantize(Decimal(1), rounding=_ROUNDING[rule.rounding]))
                else:
                    points = int(amount) * rule.points_per_month
                caps = rule.caps or Caps()
                if caps.per_event is not None and points > caps.per_event:
                    points = caps.per_event
                    note = f"per-event cap of {caps.per_event} points"
                month_cap = caps.per_month
            grants.append(ledger.Grant(name, points, expires_at, month_cap, note))
        return grants


def load_rules(
    path: str | Path, settings: ledger.LedgerSettings = ledger.DEFAULT_SETTINGS
) -> EarningRules:
    """The rules of the file at ``path``; raises RulesError with the findings."""
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RulesError([Diagnostic(str(path), 1, 1, "error", f"cannot read: {err}")]) from err
    model, diagnostics = validate_rules_text(text, str(path), settings)
    if model is None:
        raise RulesError(diagnostics)
    return EarningRules(str(path), model)


#: The rules ``POST /v1/events`` applies (None: no rules file, events get a 503).
EARNING_RULES = web.AppKey[EarningRules | None]("earning_rules")


def load_configured(path: Path, settings: ledger.LedgerSettings) -> EarningRules | None:
    """The configured rules; None (logged) when the file does not exist.

    A file that exists but is wrong raises RulesError: the service must not
    start on rules nobody can read.
    """
    if not path.exists():
        log.warning("earning_rules_missing", file=str(path))
        return None
    return load_rules(path, settings)


if __name__ == "__main__":
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
