"""The one way to name an LSL stream: :class:`StreamSelector` (exact ``name`` / ``type`` /
``source_id``), used by the inlet (``stream`` section of the config), the recorder and the
viewers, with one quoting rule for the LSL predicate."""

from __future__ import annotations

import re
from typing import Any

import pylsl
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bci_app.errors import UserError

__all__ = ["SELECTOR_KEYS", "SelectorError", "StreamSelector"]

SELECTOR_KEYS: tuple[str, ...] = ("name", "type", "source_id")
_SPEC_SPLIT = re.compile(r",(?=\s*(?:name|type|source_id)\s*=)")


class SelectorError(UserError, ValueError):
    """A stream selector cannot be built; the message says which field and why."""


def _first_message(error: ValidationError) -> str:
    item = error.errors()[0]
    message = item["msg"].removeprefix("Value error, ")
    if item["type"] in ("value_error", "assertion_error"):
        return message
    where = ".".join(str(p) for p in item["loc"])
    return f"stream selector {where}: {message} (got {item.get('input')!r})"


def xpath_literal(value: str) -> str:
    """``value`` as an XPath 1.0 string literal (which has no escapes: pick the other quote)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise SelectorError(
        f"stream selector value {value!r} contains both ' and \", which an LSL/XPath predicate "
        "cannot express; select the stream by another field (e.g. source_id=...)"
    )


class StreamSelector(BaseModel):
    """Selects LSL streams by exact, case-sensitive ``name`` / ``type`` / ``source_id`` (all the
    given fields must match; at least one is required). An ``optional`` selector that matches
    nothing is skipped by the recorder instead of failing the recording. Invalid values raise
    :class:`SelectorError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str | None = None
    type: str | None = None
    source_id: str | None = None
    optional: StrictBool = False

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise SelectorError(_first_message(exc)) from None

    @field_validator("name", "type", "source_id", mode="before")
    @classmethod
    def _plain_text(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        key = info.field_name
        if not isinstance(value, str) or not value:
            raise ValueError(f"stream selector {key} must be a non-empty string, got {value!r}")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError(
                f"stream selector {key}={value!r} contains a control character (newline, "
                "tab, ...); stream names and ids never do, so check the value"
            )
        xpath_literal(value)  # both quote kinds: refused with the reason
        return value

    @model_validator(mode="after")
    def _something_selected(self) -> StreamSelector:
        if not self.fields():
            raise ValueError(
                "a stream selector needs at least one of name, type, source_id "
                "(e.g. --stream source_id=abc or --stream name=X,type=EEG)"
            )
        return self

    def fields(self) -> dict[str, str]:
        """The given fields, in predicate order (name, type, source_id)."""
        return {key: getattr(self, key) for key in SELECTOR_KEYS if getattr(self, key) is not None}

    @classmethod
    def parse(cls, spec: str) -> StreamSelector:
        """``"source_id=abc"``, ``"name=X,type=EEG"`` (a comma inside a value is kept unless a
        key follows it). Raises :class:`SelectorError` naming the problem."""
        keys = ", ".join(SELECTOR_KEYS)
        if not isinstance(spec, str) or not spec.strip():
            raise SelectorError(
                f"stream spec must be KEY=VALUE[,KEY=VALUE] with KEY in {keys}, got {spec!r}"
            )
        fields: dict[str, str] = {}
        for part in _SPEC_SPLIT.split(spec):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in SELECTOR_KEYS:
                raise SelectorError(
                    f"stream spec {spec!r}: {part.strip()!r} is not KEY=VALUE with KEY one of "
                    f"{keys} (e.g. source_id=abc or name=X,type=EEG)"
                )
            if key in fields:
                raise SelectorError(f"stream spec {spec!r} gives {key} twice; give each key once")
            if not value:
                raise SelectorError(f"stream spec {spec!r}: {key} has an empty value")
            fields[key] = value
        return cls(**fields)

    def matches(self, info: pylsl.StreamInfo) -> bool:
        """True when every given field equals the stream's (case-sensitive, like LabRecorder)."""
        return (
            (self.name is None or info.name() == self.name)
            and (self.type is None or info.type() == self.type)
            and (self.source_id is None or info.source_id() == self.source_id)
        )

    def predicate(self) -> str:
        """The LSL/LabRecorder predicate (XPath 1.0 on ``<info>``): ``name='X' and type='EEG'``."""
        return " and ".join(f"{key}={xpath_literal(v)}" for key, v in self.fields().items())

    def __str__(self) -> str:
        text = ",".join(f"{key}={value}" for key, value in self.fields().items())
        return text + (" (optional)" if self.optional else "")
