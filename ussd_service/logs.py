"""Structured logging: JSON lines for machines, console for people, numbers masked.

Every log line passes through ``mask_phone_numbers``, so a subscriber's number
never reaches a log in full, whichever module logged it and however it was
formatted (``+79161234567`` becomes ``+7916*****67``).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

# A run of 10 to 15 digits, optionally with a leading + and the separators
# people type (spaces, dashes, brackets): every phone number we handle.
_PHONE = re.compile(r"(?<![\w+])\+?\d(?:[ \-()]{0,2}\d){9,14}(?!\w)")
_KEEP_HEAD = 4
_KEEP_TAIL = 2
# Shorter strings cannot hold a number (10+ digits): most values of a line
# (channel, node, outcome) skip the regular expression.
_SHORTEST_NUMBER = 10


def mask_number(text: str) -> str:
    """Mask every phone number in ``text``: first 4 and last 2 digits stay."""
    return _PHONE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    digits = [c for c in match.group(0) if c.isdigit()]
    plus = "+" if match.group(0).startswith("+") else ""
    hidden = len(digits) - _KEEP_HEAD - _KEEP_TAIL
    return plus + "".join(digits[:_KEEP_HEAD]) + "*" * hidden + "".join(digits[-_KEEP_TAIL:])


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_number(value) if len(value) >= _SHORTEST_NUMBER else value
    if isinstance(value, Mapping):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_phone_numbers(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask phone numbers in every value of the event."""
    for key, value in event_dict.items():
        if value.__class__ is str:
            # The common case inline: one call per line, not one per value.
            if len(value) >= _SHORTEST_NUMBER:
                event_dict[key] = _PHONE.sub(_mask_match, value)
        elif not isinstance(value, int | float | bool | None):
            event_dict[key] = _mask_value(value)
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog (and stdlib logging through it) for the whole process.

    Logs go to ``stream`` (default stdout; command-line tools pass stderr so
    their output stays clean).
    """
    stream = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info if use_json else _identity,
        mask_phone_numbers,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    # Libraries log through stdlib logging; route them through the same pipeline.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our per-request line; transitions logs
    # every state change at INFO (two lines per hop, a tenth of a hop's CPU).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)


def _identity(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict
