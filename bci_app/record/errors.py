"""The recorder's one error type and its argument check."""

from __future__ import annotations

import math
from typing import Any

from bci_app.errors import UserError


class RecordError(UserError, ValueError):
    """A recording cannot start or failed; the message says what happened and what to do."""


def check_seconds(value: Any, what: str) -> float:
    """``value`` as a float when it is a finite positive number (seconds), else
    :class:`RecordError` naming ``what``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise RecordError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)
