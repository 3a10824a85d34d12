"""The JSON Schema of the menu language, for editors and ``ussd-service schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from menus.model import MenuFile

SCHEMA_FILE = Path(__file__).with_name("menu.schema.json")
SCHEMA_ID = "https://example.invalid/ussd-service/menu.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that ``menu_definitions.yaml`` follows."""
    schema = MenuFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Menu definitions of the bonus-points help line"
    return schema


def schema_text() -> str:
    """``json_schema()`` as the text of ``menus/menu.schema.json``."""
    return json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> None:
    """Regenerate the shipped schema file (``python -m menus.schema``)."""
    path.write_text(schema_text(), encoding="utf-8")


if __name__ == "__main__":
    write_schema()
