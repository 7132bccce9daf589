"""The P300 speller's decision: flash scores summed per code, the character at the best row and
column, and dynamic stopping once the best cell's posterior is high enough. One code for live
spelling (:class:`OnlineSpeller`) and for evaluation (``bci_app.train.erp``).

A flash's score is the decoder's log-odds of "target" (:func:`flash_log_odds`). Codes
``1..n_columns`` are the matrix's columns, ``n_columns + 1 .. n_columns + n_rows`` its rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

__all__ = [
    "MAX_LOG_ODDS",
    "UNKNOWN_SYMBOL",
    "Flash",
    "FlashAssembler",
    "OnlineSpeller",
    "SpelledCharacter",
    "cell_scores",
    "flash_log_odds",
]

#: Scores are clipped to this log-odds so that one confident epoch cannot decide a character.
MAX_LOG_ODDS = 10.0
#: The symbol of a character spelled freely (``char:?``): nothing to compare with.
UNKNOWN_SYMBOL = "?"
_CODE = re.compile(r"^code(\d+)$", re.IGNORECASE)
_CHAR = re.compile(r"^char:(.*)$", re.IGNORECASE)


def flash_log_odds(probabilities: np.ndarray) -> np.ndarray:
    """Per epoch, ``log p(target) - log p(nontarget)`` of probabilities ``(n, 2)``, clipped
    to +-:data:`MAX_LOG_ODDS`."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64).reshape(-1, 2), 1e-12, 1.0)
    return np.clip(np.log(p[:, 1]) - np.log(p[:, 0]), -MAX_LOG_ODDS, MAX_LOG_ODDS)


def cell_scores(scores: np.ndarray, codes: np.ndarray, n_rows: int, n_columns: int) -> np.ndarray:
    """Summed score of each cell ``(n_rows, n_columns)``: its row's plus its column's."""
    per_code = np.bincount(np.asarray(codes) - 1, weights=scores, minlength=n_columns + n_rows)[
        : n_columns + n_rows
    ]
    return per_code[n_columns:, None] + per_code[None, :n_columns]


def best_cell(cells: np.ndarray) -> tuple[tuple[int, int], float]:
    """``((row, column), posterior)`` of the best cell; the posterior is the softmax over
    cells of their summed log-odds."""
    index = int(cells.argmax())
    return np.unravel_index(index, cells.shape), float(softmax(cells.ravel())[index])  # type: ignore[return-value]


@dataclass(frozen=True)
class Flash:
    """One flash as the markers describe it: ``position`` (its LSL time live, its sample index
    in a recording), ``code`` (1-based), ``target`` (1, 0, or -1 when unknown), the character it
    belongs to (``character`` counts characters from 0; ``symbol`` is the one being spelled,
    ``?`` when free) and ``repetition`` (earlier flashes of its code in that character)."""

    position: float
    code: int
    target: int
    character: int
    symbol: str
    repetition: int


class FlashAssembler:
    """Turns the speller's markers, fed in time order, into :class:`Flash` es.

    At each flash onset the markers share one time, in any order: ``char:<X>`` (a character's
    first flash only; ``char:?`` when free), ``code<N>``, and ``target`` or ``nontarget`` (copy
    spelling). A flash is complete when a marker at a later time arrives, or at :meth:`flush`.
    ``code0`` (BCI2000's "no stimulus") is no flash; a code above ``n_codes`` (the matrix's
    columns plus rows) is refused."""

    def __init__(self, n_codes: int) -> None:
        self.n_codes = n_codes
        self.symbols: list[str] = []  # per character, the symbol being spelled
        self._position: float | None = None
        self._code: int | None = None
        self._target = -1
        self._seen: dict[int, int] = {}

    def feed(self, position: float, label: str) -> list[Flash]:
        """One marker at ``position``; returns the flashes it completes. Raises ValueError for
        a flash before any ``char:`` marker, or a code beyond the matrix (nothing changes)."""
        char, code = _CHAR.match(label), _CODE.match(label)
        if code and int(code.group(1)) > self.n_codes:
            raise ValueError(
                f"{label} is beyond the speller's {self.n_codes} flash codes (columns, then "
                "rows); set paradigm.matrix to the matrix the stimulus program shows"
            )
        if code and int(code.group(1)) == 0:
            code = None  # BCI2000's "no stimulus" between flashes
        done = self.flush() if position != self._position else []
        self._position = position
        lowered = label.strip().lower()
        if char:
            self.symbols.append(char.group(1) or UNKNOWN_SYMBOL)
            self._seen = {}
        elif code:
            if self._code is not None:  # two codes at one time: two flashes
                done += self.flush()
                self._position = position
            self._code = int(code.group(1))
        elif lowered in ("target", "nontarget"):
            self._target = 1 if lowered == "target" else 0
        return done

    def flush(self) -> list[Flash]:
        """The flash waiting for more markers at its time, if any, as complete."""
        position, code, target = self._position, self._code, self._target
        self._position, self._code, self._target = None, None, -1
        if code is None or position is None:
            return []
        if not self.symbols:
            raise ValueError(
                f"a flash (code{code}) at {position:g} comes before any char:<X> marker; each "
                "character's first flash needs char:<X> (char:? when free)"
            )
        repetition = self._seen.get(code, 0)
        self._seen[code] = repetition + 1
        character = len(self.symbols) - 1
        return [Flash(position, code, target, character, self.symbols[character], repetition)]


@dataclass(frozen=True)
class SpelledCharacter:
    """A decided character: ``symbol``, the character index, how many flashes and full
    repetitions went into it, the best cell's posterior, and whether it stopped early."""

    symbol: str
    character: int
    flashes: int
    repetitions: int
    posterior: float
    stopped_early: bool
    asked: str = "?"  # the symbol the copy-spelling asked for ("?" when free)


@dataclass
class OnlineSpeller:
    """Accumulates flash scores of the current character; decides it early when the posterior
    passes ``stop_posterior`` (after at least ``min_repetitions`` repetitions), else when the
    next character's first flash arrives (:meth:`add`) or at :meth:`finish`."""

    matrix: Sequence[str]
    stop_posterior: float = 0.95
    min_repetitions: int = 1
    _character: int | None = None
    _symbol: str = "?"
    _scores: list[float] = field(default_factory=list)
    _codes: list[int] = field(default_factory=list)
    _decided: bool = False

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.matrix), len(self.matrix[0])

    def add(self, flash: Flash, probabilities: np.ndarray) -> list[SpelledCharacter]:
        """Score one flash (target probabilities ``(2,)``); returns the characters decided by
        it (the previous one when ``flash`` starts a new character, and/or this one early)."""
        decided: list[SpelledCharacter] = []
        if self._character is not None and flash.character != self._character:
            last = self.finish()
            if last is not None:
                decided.append(last)
        if self._character != flash.character:
            self._character, self._symbol = flash.character, flash.symbol
            self._scores, self._codes, self._decided = [], [], False
        if self._decided:
            return decided  # flashes after an early stop still arrive; they change nothing
        self._scores.append(float(flash_log_odds(probabilities)[0]))
        self._codes.append(flash.code)
        n_rows, n_columns = self.shape
        repetitions = min(np.bincount(self._codes, minlength=n_rows + n_columns + 1)[1:])
        if repetitions >= self.min_repetitions:
            cells = cell_scores(np.array(self._scores), np.array(self._codes), n_rows, n_columns)
            _, posterior = best_cell(cells)
            if posterior >= self.stop_posterior:
                decided.append(self._decide(stopped_early=True))
        return decided

    def finish(self) -> SpelledCharacter | None:
        """Decide the current character with what it has (None when already decided or empty)."""
        if self._decided or not self._codes:
            return None
        return self._decide(stopped_early=False)

    def _decide(self, stopped_early: bool) -> SpelledCharacter:
        n_rows, n_columns = self.shape
        cells = cell_scores(np.array(self._scores), np.array(self._codes), n_rows, n_columns)
        (row, column), posterior = best_cell(cells)
        self._decided = True
        counts = np.bincount(self._codes, minlength=n_rows + n_columns + 1)[1:]
        return SpelledCharacter(
            symbol=self.matrix[row][column],
            character=int(self._character or 0),
            flashes=len(self._codes),
            repetitions=int(counts.min()),
            posterior=round(posterior, 4),
            stopped_early=stopped_early,
            asked=self._symbol,
        )
