"""Every limit of the menu language and engine, by name (checked at load time)."""

from __future__ import annotations

# USSD gateway limits: one page is 182 GSM-7 septets, or 80 UCS-2 characters
# as soon as any character falls outside the GSM 03.38 alphabet.
USSD_MAX_GSM7 = 182
USSD_MAX_UCS2 = 80

# One SMS: 160 GSM-7 septets or 70 UCS-2 characters.
SMS_MAX_GSM7 = 160
SMS_MAX_UCS2 = 70

# Engine: automatic steps (action, route) one hop may take before it gives up
# and hands the session to an operator; guards against route loops.
MAX_STEPS_PER_HOP = 32
# Screens remembered for "back"; older ones are dropped (keeps the session small).
MAX_BREADCRUMB = 8
# Shortcut inputs taken from one dialled USSD string.
MAX_SHORTCUT_INPUTS = 8
# Variables kept in a session: count and the length of one string value.
MAX_SESSION_VARIABLES = 24
MAX_VARIABLE_LENGTH = 64
# Raw subscriber input considered at all (longer input is invalid).
MAX_INPUT_LENGTH = 64

# Option keys a subscriber can press on one page.
MAX_OPTIONS_PER_PAGE = 9
# A menu of up to this many options must fit this many USSD pages in every
# language (labels short enough to read a menu in two screens, even in UCS-2).
SHORT_MENU_OPTIONS = 7
SHORT_MENU_PAGES = 2
# IVR lists read this many items per page at most.
IVR_LIST_PAGE_SIZE = 5

# Expressions (conditions): length of the source and nesting depth.
MAX_EXPRESSION_LENGTH = 256
MAX_EXPRESSION_DEPTH = 16

# Regex validators: pattern length (patterns are compiled once, at load).
MAX_REGEX_LENGTH = 128
# Placeholders without a declared max_length count as this many characters.
DEFAULT_PLACEHOLDER_LENGTH = 20
# The longest `{x, day}` (day and month) in any language: "30 сент.".
DAY_MONTH_LENGTH = 8
