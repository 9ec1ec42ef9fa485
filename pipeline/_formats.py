"""Body formats a fetch reads records from, and the options of the ones that have any.

``format`` is set on a connector (its default) and may be set again on a fetch stage:

- ``json`` — the whole body is one JSON document (the default, and the fastest path);
- ``ndjson`` — JSON Lines: one JSON value per line, read as it arrives;
- ``csv`` — a header row (or ``csv.columns``), then one record per row, read as it arrives;
- ``xml`` — elements at the ``records`` path become records, read as they arrive;
- ``auto`` — chosen per response by its Content-Type, then by the URL's suffix.

A ``.gz`` payload (Content-Type ``application/gzip`` or a ``.gz`` URL) is decompressed
first, in any format; a ``Content-Encoding`` the HTTP client undoes itself.
"""

from __future__ import annotations

import codecs
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BodyFormat = Literal["json", "ndjson", "csv", "xml", "auto"]
BODY_FORMATS: tuple[str, ...] = ("json", "ndjson", "csv", "xml", "auto")
# A fetch may also read no records at all ("none"); one Literal, so an error lists all.
FetchFormat = Literal["json", "ndjson", "csv", "xml", "auto", "none"]


class CsvOptions(BaseModel):
    """How a CSV body reads: the stdlib ``csv`` module's excel dialect with these changes.

    Values arrive as text (an empty field is ``""``); a ``coerce`` transform types them.
    A row with more or fewer fields than the header is a ``MalformedBody`` at its line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    # False: every row is data, and ``columns`` names the fields.
    header: bool = True
    columns: tuple[str, ...] | None = None
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value

    @model_validator(mode="after")
    def _names(self) -> CsvOptions:
        if not self.header and not self.columns:
            raise ValueError("header = false needs columns = [...] to name the fields")
        if self.delimiter in ('"', "\n", "\r"):
            raise ValueError(f"delimiter {self.delimiter!r} cannot separate fields")
        return self
