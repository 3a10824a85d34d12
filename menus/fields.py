"""Field types shared by the file-level models (``menus.model``) and the node kinds.

Kept apart from ``menus.model`` because the model builds its ``Node`` union
from the node kinds, and the kinds need these types first.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["ussd", "ivr"]
CHANNELS: tuple[Channel, ...] = ("ussd", "ivr")

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
Key = Annotated[str, Field(pattern=r"^[0-9*#]{1,3}$")]
# A language code as Babel knows it: ru, en, en_GB.
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
# An argument or assignment value: "$path" reads a variable, anything else is literal.
ArgValue = str | int | bool


class StrictModel(BaseModel):
    """A frozen model that refuses unknown fields (a typo in the YAML is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalText(BaseModel):
    """A text per language (``ru: ...``, ``en: ...``), with optional IVR wording and audio."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, str] = Field(init=False)

    ivr: dict[str, str] | None = Field(
        default=None, description="Wording for voice, per language, when it differs."
    )
    audio: dict[str, str] | None = Field(
        default=None, description="An audio file per language played instead of text-to-speech."
    )


# A bare string names a reusable text from `texts`.
Text = Annotated[
    str | LocalText,
    Field(description="Texts per language, or the name of a reusable text from `texts`."),
]
