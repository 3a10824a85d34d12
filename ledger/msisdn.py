"""Phone numbers as people type them -> E.164."""

from __future__ import annotations

import phonenumbers

from ledger.errors import InvalidMsisdn


def try_normalize(raw: str, region: str) -> str | None:
    """``raw`` in E.164 (``+79161234567``), or None when it is not a valid number.

    Accepts the forms people type: ``+7 916 123-45-67``, ``8 916 123 45 67``,
    ``79161234567``, ``9161234567`` (read in ``region``).
    """
    text = raw.strip()
    if not text or len(text) > 32:
        return None
    candidates = [text]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not text.startswith("+") and digits == text.replace(" ", "").replace("-", ""):
        # Digits only: maybe an international number without its "+".
        candidates.append("+" + digits)
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def normalize(raw: str, region: str) -> str:
    """Like ``try_normalize`` but raises ``InvalidMsisdn``."""
    result = try_normalize(raw, region)
    if result is None:
        raise InvalidMsisdn(raw)
    return result
