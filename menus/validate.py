"""Loading and validating menu files: YAML with positions -> model -> checks -> ``Menu``.

Every finding is a ``Diagnostic`` with the file, line and column of the YAML
that caused it and the node id. The checks: the schema (pydantic), the graph
(targets, reachability, dead ends, failure paths), texts (every language,
templates, declared placeholders), operations (names, arguments, result codes
from the operation table passed in) and lengths (USSD pages, SMS). Each node
kind checks itself (``NodeKind.check``, ``check_length``); this module runs
the checks over the whole file and says where in the YAML a finding is.
"""

from __future__ import annotations

import gc
import hashlib
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from menus import limits
from menus.compiled import REQUIRED_TEXTS
from menus.engine import Menu
from menus.errors import Diagnostic, MenuError
from menus.expr import ExpressionError
from menus.expr import parse as parse_expression
from menus.gsm import measure
from menus.locate import Checker, Locator, read_yaml, schema_errors, without_refused_nodes
from menus.model import LocalText, MenuFile, Text
from menus.nodes import Path_
from menus.operations import NO_OPERATIONS, OperationTable
from menus.screen import PageLimits
from menus.text import Placeholder, Segment, TemplateError, parse_template, placeholders
from menus.text import render_worst as worst_text

# Placeholders the engine fills itself in its own texts.
_ENGINE_PLACEHOLDERS = {"ivr_option": frozenset({"label", "key"}), "ivr_keys": frozenset({"back"})}
_WIDE_GSM7 = "W"
_WIDE_UCS2 = "Ж"


def _texts_in(model: MenuFile) -> Iterator[tuple[Path_, Text]]:
    """Every text field of the file with its path."""
    for name, local in model.texts.items():
        yield ("texts", name), local
    for node_id, node in model.nodes.items():
        for path, text in node.texts():
            yield ("nodes", node_id, *path), text
    for group in ("replies", "notifications"):
        for name, text in getattr(model.sms, group).items():
            yield ("sms", group, name), text


class _Validator:
    """The checks after the schema, on a parsed model."""

    def __init__(
        self,
        model: MenuFile,
        checker: Checker,
        service_texts: Sequence[str] = (),
        operations: OperationTable = NO_OPERATIONS,
        sms_replies: Sequence[str] = (),
        *,
        refused: frozenset[str] | None = None,
    ) -> None:
        self.model = model
        # After schema errors: the nodes the schema refused stand in as
        # placeholders, so the whole-file checks (reachability, dead ends,
        # lengths) and what depends on those nodes are skipped.
        self.refused = refused or frozenset()
        self.partial = refused is not None
        self.checker = checker
        self.service_texts = service_texts
        self.operations = operations
        self.sms_replies = sms_replies
        self.report = checker.report
        self.languages = list(dict.fromkeys(model.languages))
        # Parsed templates per text path and language (for length checks).
        self.parsed: dict[Path_, dict[str, tuple[Segment, ...]]] = {}
        # Asked for by every option and every node: computed once each.
        self._nav_keys: dict[tuple[str, ...] | None, dict[str, str]] = {}
        self._page_limits: dict[str, PageLimits] = {}

    def run(self) -> None:
        model = self.model
        if model.default_language not in model.languages:
            self.report(("default_language",), "default_language is not one of languages")
        for name in REQUIRED_TEXTS:
            if name not in model.texts:
                self.report(("texts",), f"the engine's text '{name}' is missing from texts")
        for name in self.service_texts:
            if name not in model.texts:
                self.report(("texts",), f"the service's text '{name}' is missing from texts")
        for name in self.sms_replies:
            if name not in model.sms.replies:
                message = f"the service's SMS reply '{name}' is missing from sms.replies"
                self.report(("sms",), message)
        for path, text in _texts_in(model):
            self.check_text(path, text)
        self.check_entries()
        for node_id, node in model.nodes.items():
            if node_id not in self.refused:
                node.check(("nodes", node_id), self)
        if self.partial:
            return
        self.check_graph()
        if not any(d.level == "error" for d in self.checker.diagnostics):
            self.check_lengths()

    # ------------------------------------------------------------------ texts

    def local(self, text: Text) -> LocalText | None:
        return self.model.texts.get(text) if isinstance(text, str) else text

    def check_text(self, path: Path_, text: Text) -> None:
        if isinstance(text, str):
            if text not in self.model.texts:
                self.report(path, f"unknown text '{text}' (not in texts)")
            return
        values = dict(text.model_extra or {})
        for lang in values:
            if lang not in self.languages:
                self.report((*path, lang), f"language '{lang}' is not in languages")
        parsed: dict[str, tuple[Segment, ...]] = {}
        for group, group_values in (("", values), ("ivr", text.ivr), ("audio", text.audio)):
            if group_values is None:
                continue
            where = (*path, group) if group else path
            for lang in self.languages:
                if lang not in group_values:
                    label = f"{group} " if group else ""
                    self.report(where, f"{label}text has no '{lang}' translation")
            if group == "audio":
                continue
            for lang, source in group_values.items():
                try:
                    segments = parse_template(source)
                except TemplateError as err:
                    self.report((*where, lang), f"bad template: {err} (at offset {err.position})")
                    continue
                if not group:
                    parsed[lang] = segments
                self.check_placeholders((*where, lang), segments)
        self.parsed[path] = parsed

    def check_placeholders(self, path: Path_, segments: tuple[Segment, ...]) -> None:
        engine = str(path[1]) if path[:1] == ("texts",) and len(path) > 1 else ""
        allowed = _ENGINE_PLACEHOLDERS.get(engine, frozenset())
        for placeholder in placeholders(segments):
            name = placeholder.path
            if name not in self.model.variables and name not in allowed:
                self.report(
                    path,
                    f"placeholder '{{{name}}}' has no max_length: declare it in variables",
                )

    # ------------------------------------------------------------ the graph

    def target(self, path: Path_, node_id: str | None) -> None:
        if node_id is not None and node_id not in self.model.nodes:
            self.report(path, f"target '{node_id}' does not exist")

    def check_entries(self) -> None:
        model = self.model
        for channel in ("ussd", "ivr"):
            entry = getattr(model.entry, channel)
            if entry is not None:
                self.target(("entry", channel, "start"), entry.start)
                self.target(("entry", channel, "home"), entry.home)
        self.target(("operator",), model.operator)
        self.target(("unavailable",), model.unavailable)
        operator = model.nodes.get(model.operator)
        if operator is not None and operator.kind != "operator" and not self.partial:
            self.report(("operator",), f"operator node '{model.operator}' is not of kind operator")

    def nav_keys(self, channels: Sequence[str] | None) -> dict[str, str]:
        key = None if channels is None else tuple(channels)
        keys = self._nav_keys.get(key)
        if keys is None:
            keys = self._nav_keys[key] = self._navigation(channels)
        return keys

    def _navigation(self, channels: Sequence[str] | None) -> dict[str, str]:
        keys: dict[str, str] = {}
        settings = self.model.channels
        wanted = channels or ["ussd", "ivr"]
        if "ussd" in wanted:
            keys.update({v: f"USSD {k}" for k, v in settings.ussd.navigation})
        if "ivr" in wanted and self.model.entry.ivr is not None:
            keys.update({v: f"IVR {k}" for k, v in settings.ivr.navigation})
        return keys

    def condition(self, path: Path_, source: str) -> None:
        try:
            parse_expression(source)
        except ExpressionError as err:
            self.report(path, f"bad condition: {err} (at offset {err.position})")

    def check_graph(self) -> None:
        model = self.model
        nodes = model.nodes
        graph = {
            node_id: [edge.target for edge in edges if edge.target in nodes]
            for node_id, edges in model.graph().items()
        }
        roots = [model.operator, model.unavailable]
        for entry in (model.entry.ussd, model.entry.ivr):
            if entry is not None:
                roots += [entry.start, entry.home]
        reached = _reach([r for r in roots if r in graph], graph)
        for node_id in model.nodes:
            if node_id not in reached:
                self.report(("nodes", node_id), "unreachable from any entry point")
        reverse: dict[str, list[str]] = {node_id: [] for node_id in graph}
        for source, targets in graph.items():
            for target in targets:
                reverse[target].append(source)
        finals = [n for n, node in model.nodes.items() if node.final]
        ends = _reach(finals, reverse)
        for node_id in model.nodes:
            if node_id not in ends:
                self.report(
                    ("nodes", node_id),
                    "dead end: no path from here to a final screen (message or operator)",
                )

    # ---------------------------------------------------------------- lengths

    def width(self, placeholder: Placeholder, language: str) -> str:
        spec = self.model.variables.get(placeholder.path)
        size = spec.max_length if spec else limits.DEFAULT_PLACEHOLDER_LENGTH
        if placeholder.format == "day":
            # Day and month only, whatever the full value: "30 сент.", "Sep 30".
            size = min(size, limits.DAY_MONTH_LENGTH)
        elif placeholder.format == "signed":
            size += 1
        wide = spec is not None and spec.is_unicode(language)
        return (_WIDE_UCS2 if wide else _WIDE_GSM7) * size

    def worst(self, path: Path_, text: Text, language: str) -> str:
        key = ("texts", text) if isinstance(text, str) else path
        segments = self.parsed.get(key, {}).get(language, ())
        return worst_text(segments, lambda placeholder: self.width(placeholder, language))

    def page_limits(self, language: str) -> PageLimits:
        page = self._page_limits.get(language)
        if page is None:
            page = self._page_limits[language] = self._limits_in(language)
        return page

    def _limits_in(self, language: str) -> PageLimits:
        ussd = self.model.channels.ussd
        names = ("more", "back", "invalid_input")
        words = {n: self.worst(("texts", n), n, language) for n in names}
        return PageLimits(
            max_gsm7=ussd.max_gsm7,
            max_ucs2=ussd.max_ucs2,
            more_line=f"{ussd.navigation.more}. {words['more']}",
            back_line=f"{ussd.navigation.back}. {words['back']}",
            max_entries=limits.MAX_OPTIONS_PER_PAGE,
            error_line=words["invalid_input"],
        )

    def check_lengths(self) -> None:
        for node_id, node in self.model.nodes.items():
            base: Path_ = ("nodes", node_id)
            for language in self.languages:
                node.check_length(base, self, language)
        for group in ("replies", "notifications"):
            for name, text in getattr(self.model.sms, group).items():
                for language in self.languages:
                    sms = measure(self.worst(("sms", group, name), text, language))
                    if not sms.fits(limits.SMS_MAX_GSM7, limits.SMS_MAX_UCS2):
                        limit = limits.SMS_MAX_GSM7 if sms.gsm7 else limits.SMS_MAX_UCS2
                        self.report(
                            ("sms", group, name, language),
                            f"{language} text can take {_units(sms.units, sms.gsm7)}, more than "
                            f"one SMS ({limit}); it will be sent in parts",
                            "warning",
                        )

    def fit(self, page: PageLimits, text: str, path: Path_, language: str, what: str) -> None:
        if not page.fits(text):
            size = measure(text)
            limit = page.max_gsm7 if size.gsm7 else page.max_ucs2
            self.report(
                path,
                f"{language}: {what} is too long for one USSD page: "
                f"{_units(size.units, size.gsm7)}, limit {limit}",
            )


def _units(units: int, gsm7: bool) -> str:
    return f"{units} GSM-7 septets" if gsm7 else f"{units} UCS-2 characters"


def _reach(roots: list[str], graph: Mapping[str, list[str]]) -> set[str]:
    seen = set(roots)
    queue = deque(roots)
    while queue:
        for target in graph.get(queue.popleft(), []):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def validate_text(
    text: str,
    file: str = "<menu>",
    service_texts: Sequence[str] = (),
    operations: OperationTable = NO_OPERATIONS,
    sms_replies: Sequence[str] = (),
) -> tuple[MenuFile | None, list[Diagnostic]]:
    """Check a menu file's content; the model (None on schema errors) and the findings.

    ``service_texts`` names texts the program running the menu needs beyond
    the engine's own (the service's "session expired", for example);
    ``operations`` is the table of operations nodes may name; ``sms_replies``
    names the ``sms.replies`` the program answers SMS with.
    """
    checker = Checker(file, Locator(None))
    doc = read_yaml(text, checker)
    if checker.diagnostics:
        return None, checker.diagnostics
    checker.locator = Locator(doc)
    if not isinstance(doc, Mapping):
        checker.diagnostics.append(
            Diagnostic(file, 1, 1, "error", "a menu file is a mapping (version, nodes, ...)")
        )
        return None, checker.diagnostics
    try:
        model = MenuFile.model_validate(doc)
    except ValidationError as err:
        schema_errors(err, checker)
        partial = without_refused_nodes(doc, err)
        if partial is not None:
            args = (service_texts, operations, sms_replies)
            _Validator(partial[0], checker, *args, refused=partial[1]).run()
        return None, sorted(checker.diagnostics, key=lambda d: (d.line, d.col))
    _Validator(model, checker, service_texts, operations, sms_replies).run()
    return model, sorted(checker.diagnostics, key=lambda d: (d.line, d.col))


def _read(path: str | Path) -> tuple[str | None, bytes, list[Diagnostic]]:
    try:
        data = Path(path).read_bytes()
        return data.decode("utf-8"), data, []
    except (OSError, UnicodeDecodeError) as err:
        return None, b"", [Diagnostic(str(path), 1, 1, "error", f"cannot read: {err}")]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a file loads.

    Loading builds millions of objects and frees few; each collection walks
    every one alive, so collections took most of the time of a large file
    (10,000 nodes: 8 s of 12) and grew faster than the file. What the load
    built then goes straight to the oldest generation (``freeze`` then
    ``unfreeze``, when nothing else is frozen), as if it had survived two
    collections, instead of being walked by a young collection right after.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def validate_file(
    path: str | Path,
    service_texts: Sequence[str] = (),
    operations: OperationTable = NO_OPERATIONS,
    sms_replies: Sequence[str] = (),
) -> list[Diagnostic]:
    """Every finding for the file at ``path`` (errors and warnings), in line order."""
    text, _data, problems = _read(path)
    if text is None:
        return problems
    with _gc_paused():
        return validate_text(text, str(path), service_texts, operations, sms_replies)[1]


def version_of(data: bytes) -> str:
    """The version id of a menu file: a short hash of its content."""
    return hashlib.sha256(data).hexdigest()[:16]


def load_menu(
    path: str | Path,
    service_texts: Sequence[str] = (),
    operations: OperationTable = NO_OPERATIONS,
    sms_replies: Sequence[str] = (),
) -> Menu:
    """Load, validate and compile a menu file; raises MenuError with the diagnostics."""
    text, data, problems = _read(path)
    if text is None:
        raise MenuError(problems)
    with _gc_paused():
        model, diagnostics = validate_text(text, str(path), service_texts, operations, sms_replies)
        if model is None or any(d.level == "error" for d in diagnostics):
            raise MenuError(diagnostics)
        menu = Menu(model, version_of(data), str(path), operations)
    menu.warnings = [d for d in diagnostics if d.level == "warning"]
    return menu
