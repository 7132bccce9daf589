"""The P300 speller's flash schedule and state machine, free of Qt so any clock can drive it.

A character is ``repetitions`` blocks; each block flashes every row and every column of the
matrix once, in a seeded random order (a block never starts with the code that ended the one
before, so no row or column flashes twice in a row). A flash lasts ``flash_s`` and the next one
starts ``flash_s + blank_s`` (the SOA) after it; characters are ``pause_s`` apart. Codes follow
the offline trainer (:mod:`bci_app.train.erp`): ``1..n_columns`` are the columns, the next
``n_rows`` the rows.

Markers, all stamped with the time the flash was drawn (the GUI calls
:meth:`SpellerSequencer.flash_drawn` right after painting it): ``char:<X>`` at the first flash of
a character (``char:?`` in free spelling), ``code<N>`` at every flash, and ``target`` /
``nontarget`` in copy spelling. Times are LSL seconds (``pylsl.local_clock``).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from bci_app.config import SPELLER_MATRIX
from bci_app.sources.simulator_stream import SimulatorClock

__all__ = [
    "CharacterPlanner",
    "FlashPlanner",
    "PlannedCharacter",
    "PlannedFlash",
    "SpellerPhase",
    "SpellerSequencer",
    "SpellerSettings",
    "SimulatorFlashPlanner",
    "cells_of_code",
    "codes_of_symbol",
    "plan_character",
]

UNKNOWN_CHAR = "?"  # the char: marker's symbol in free spelling (as erp.py reads it)
LEAD_S = 0.5  # the first character's pause starts this long after start()


def cells_of_code(matrix: Sequence[str], code: int) -> list[tuple[int, int]]:
    """The ``(row, column)`` cells that flash code ``code`` (1-based) lights."""
    n_rows, n_columns = len(matrix), len(matrix[0])
    if 1 <= code <= n_columns:
        return [(r, code - 1) for r in range(n_rows)]
    if n_columns < code <= n_columns + n_rows:
        return [(code - n_columns - 1, c) for c in range(n_columns)]
    raise ValueError(
        f"code {code} is outside 1..{n_columns + n_rows} of a {n_rows}x{n_columns} matrix"
    )


def codes_of_symbol(matrix: Sequence[str], symbol: str) -> tuple[int, int]:
    """``(column code, row code)`` of the cell holding ``symbol``."""
    for r, row in enumerate(matrix):
        c = row.find(symbol)
        if c >= 0 and len(symbol) == 1:
            return c + 1, len(matrix[0]) + r + 1
    raise ValueError(f"{symbol!r} is not in the speller matrix")


class SpellerSettings(BaseModel):
    """One speller run: the matrix, copy spelling of ``text`` (target/nontarget markers) or free
    spelling (``text`` None; ``characters`` of them, None: until stopped), ``repetitions`` blocks
    per character, flash and blank (s), pause between characters (s), and the order's seed.

    ``text`` is normalised to the matrix: lower case letters become upper case when only those
    are in the matrix, and a space becomes ``_`` when the matrix has one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    matrix: tuple[str, ...] = SPELLER_MATRIX
    text: str | None = None
    characters: Annotated[StrictInt, Field(ge=1)] | None = None
    repetitions: Annotated[StrictInt, Field(ge=1, le=100)] = 10
    flash_s: Annotated[float, Field(gt=0, le=1.0, allow_inf_nan=False)] = 0.1
    blank_s: Annotated[float, Field(ge=0, le=2.0, allow_inf_nan=False)] = 0.075
    pause_s: Annotated[float, Field(ge=0, le=60.0, allow_inf_nan=False)] = 2.5
    seed: StrictInt = 0

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, matrix: tuple[str, ...]) -> tuple[str, ...]:
        if len(matrix) < 2 or min(len(row) for row in matrix) < 2:
            raise ValueError(f"the speller matrix needs at least 2 rows of 2 symbols, got {matrix}")
        if len({len(row) for row in matrix}) != 1:
            raise ValueError(f"every row of the speller matrix needs as many symbols, got {matrix}")
        symbols = "".join(matrix)
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"a symbol appears twice in the speller matrix {matrix}")
        if UNKNOWN_CHAR in symbols:
            raise ValueError(f"{UNKNOWN_CHAR!r} marks free spelling and cannot be a matrix symbol")
        return matrix

    @model_validator(mode="after")
    def _copy_text(self) -> SpellerSettings:
        if self.text is None:
            return self
        symbols = "".join(self.matrix)
        text = self.text
        if "_" in symbols and " " not in symbols:
            text = text.replace(" ", "_")
        if text.upper() != text and not any(s.islower() for s in symbols):
            text = text.upper()
        missing = sorted({s for s in text if s not in symbols})
        if not text:
            raise ValueError("the copy text is empty; give the characters to spell (or --free)")
        if missing:
            raise ValueError(
                f"the copy text {self.text!r} has {', '.join(map(repr, missing))}, not in the "
                f"speller matrix (its symbols: {' '.join(self.matrix)})"
            )
        if self.characters is not None and self.characters != len(text):
            raise ValueError(
                f"characters ({self.characters}) must be left out in copy spelling: the copy text "
                f"{text!r} has {len(text)}"
            )
        object.__setattr__(self, "text", text)
        return self

    @property
    def soa_s(self) -> float:
        """Flash onset to the next flash's onset (s)."""
        return self.flash_s + self.blank_s

    @property
    def n_codes(self) -> int:
        return len(self.matrix) + len(self.matrix[0])

    @property
    def copy(self) -> bool:
        return self.text is not None

    @property
    def n_characters(self) -> int | None:
        """Characters to spell (None: free spelling until stopped)."""
        return len(self.text) if self.text is not None else self.characters

    @property
    def character_s(self) -> float:
        """One character with every repetition, its pause included (s)."""
        return self.pause_s + self.repetitions * self.n_codes * self.soa_s


@dataclass(frozen=True)
class PlannedFlash:
    """One flash of a character: its ``index`` in the character, ``repetition`` (0-based),
    ``code`` (1-based), ``onset_s`` after the character's first flash, and its markers."""

    index: int
    repetition: int
    code: int
    onset_s: float
    labels: tuple[str, ...]


@dataclass(frozen=True)
class PlannedCharacter:
    """A character's flashes; ``symbol`` is the target (None in free spelling), ``first_flash``
    its first flash's planned onset (LSL s). ``intended``: in free spelling on the simulator,
    the character the simulated participant attends to (None otherwise)."""

    index: int
    symbol: str | None
    flashes: tuple[PlannedFlash, ...]
    first_flash: float = 0.0
    intended: str | None = None


class CharacterPlanner(Protocol):
    settings: SpellerSettings

    def character(self, index: int, not_before: float) -> PlannedCharacter:
        """Character ``index`` (asked in order), its first flash at or after ``not_before``
        (LSL s)."""
        ...


def plan_character(
    settings: SpellerSettings,
    index: int,
    symbol: str | None,
    codes: Sequence[int],
    onsets_s: Sequence[float],
    first_flash: float,
    intended: str | None = None,
) -> PlannedCharacter:
    """The flashes of ``codes`` at ``onsets_s`` (s after the first) with their markers:
    ``char:<symbol>`` (``char:?`` without a target) at the first, ``code<N>`` at each, and
    ``target``/``nontarget`` when ``symbol`` is the target."""
    targets = codes_of_symbol(settings.matrix, symbol) if symbol is not None else ()
    flashes = []
    for i, (code, onset) in enumerate(zip(codes, onsets_s, strict=True)):
        labels: list[str] = []
        if i == 0:
            labels.append(f"char:{symbol if symbol is not None else UNKNOWN_CHAR}")
        labels.append(f"code{code}")
        if symbol is not None:
            labels.append("target" if code in targets else "nontarget")
        flashes.append(PlannedFlash(i, i // settings.n_codes, code, onset, tuple(labels)))
    return PlannedCharacter(index, symbol, tuple(flashes), first_flash, intended)


class FlashPlanner:
    """The flash order and markers of each character, seeded by ``settings.seed``; each
    character starts at the ``not_before`` it is asked for (a real amplifier)."""

    def __init__(self, settings: SpellerSettings) -> None:
        self.settings = settings
        self._rng = np.random.default_rng(settings.seed)
        self._last_code: int | None = None

    def codes(self) -> list[int]:
        """One character's codes: ``repetitions`` random permutations of every code."""
        n = self.settings.n_codes
        order: list[int] = []
        for _ in range(self.settings.repetitions):
            block = [int(c) + 1 for c in self._rng.permutation(n)]
            if block[0] == self._last_code:  # no code twice in a row across blocks
                j = int(self._rng.integers(1, n))
                block[0], block[j] = block[j], block[0]
            order += block
            self._last_code = block[-1]
        return order

    def character(self, index: int, not_before: float = 0.0) -> PlannedCharacter:
        """Character ``index`` (call in order: the random order is drawn as it goes), its
        first flash at ``not_before`` (LSL s)."""
        s = self.settings
        codes = self.codes()
        return plan_character(
            s,
            index,
            s.text[index] if s.text is not None else None,
            codes,
            [i * s.soa_s for i in range(len(codes))],
            not_before,
        )


class SimulatorFlashPlanner:
    """The characters of the simulator's own speller schedule (``clock``: a started p300
    simulator), in LSL time, so that the EEG it generates answers what the screen shows and
    the whole flow runs without hardware.

    Copy spelling takes the schedule's characters one after another from the first whose
    first flash is at or after ``not_before`` (:meth:`text` says which: build the settings'
    copy text from it). Free spelling takes, for each character, the schedule's first one
    flashing at or after its ``not_before`` (a character ended early by dynamic stopping skips
    the rest of the simulator's), and says in ``intended`` what the simulated participant
    attends to."""

    def __init__(self, settings: SpellerSettings, clock: SimulatorClock, not_before: float) -> None:
        sim = clock.settings
        if sim.paradigm != "p300":
            raise ValueError(f"the simulator runs the {sim.paradigm} paradigm, not p300")
        if (tuple(sim.matrix), sim.repetitions) != (settings.matrix, settings.repetitions) or (
            abs(sim.soa_s - settings.soa_s) > 1e-9
        ):
            raise ValueError(
                f"the speller ({settings.repetitions} repetitions, SOA {settings.soa_s:g} s) "
                f"must flash as the simulator does ({sim.repetitions} repetitions, SOA "
                f"{sim.soa_s:g} s, the same matrix)"
            )
        self.settings = settings
        self.clock = clock
        self.schedule = clock.schedule
        self.first = self._first_at(0, not_before)
        self._next = self.first

    def _first_flash(self, k: int) -> float:
        return self.clock.timestamp_of(self.schedule.character(k).first_flash)

    def _first_at(self, k: int, not_before: float) -> int:
        # A half-sample tolerance: times rebuilt from sample indices are not exact.
        while self._first_flash(k) < not_before - 0.5 / self.clock.settings.rate_hz:
            k += 1
        return k

    def text(self, n_characters: int) -> str:
        """The ``n_characters`` symbols that copy spelling will cue, in order."""
        return "".join(self.schedule.character(self.first + i).char for i in range(n_characters))

    def character(self, index: int, not_before: float) -> PlannedCharacter:
        copy = self.settings.copy
        k = self.first + index if copy else self._first_at(self._next, not_before)
        self._next = k + 1
        char = self.schedule.character(k)
        first_flash = self.clock.timestamp_of(char.first_flash)
        flashes = self.schedule.flashes_between(char.first_flash, char.stop)
        return plan_character(
            self.settings,
            index,
            char.char if copy else None,
            [f.code for f in flashes],
            [self.clock.timestamp_of(f.sample) - first_flash for f in flashes],
            first_flash,
            intended=None if copy else char.char,
        )


class SpellerPhase(enum.Enum):
    IDLE = "idle"  # not started
    PAUSE = "pause"  # before a character's first flash (copy spelling: its target is cued)
    FLASH = "flash"  # a row or a column is lit
    BLANK = "blank"  # between two flashes
    FINISHED = "finished"
    ABORTED = "aborted"


class MarkerSink(Protocol):
    def push(self, label: str, stamp: float) -> None: ...


@dataclass
class DrawnFlash:
    """A flash as it happened: ``planned`` and ``drawn`` onsets (LSL s; drawn None: it never
    reached the screen, no marker) and its markers."""

    character: int
    flash: PlannedFlash
    planned: float
    drawn: float | None = None
    reported: bool = False  # the GUI reported its drawing (drawn None: it failed)


@dataclass
class CharacterState:
    """The character in progress: ``anchor`` is its first flash's planned onset (LSL s)."""

    planned: PlannedCharacter
    anchor: float
    next_flash: int = 0  # the first flash not yet shown
    on: DrawnFlash | None = None  # the flash lit now
    stopped_after: int | None = None  # dynamic stopping: flashes shown before it ended
    drawn: list[DrawnFlash] = field(default_factory=list)


class SpellerSequencer:
    """Runs the characters of ``settings``; the GUI calls :meth:`tick` with the current LSL time,
    draws :attr:`phase` / :attr:`flash_code`, and right after drawing a flash calls
    :meth:`flash_drawn` with the paint time, which stamps its markers on ``markers``.

    Late ticks never skip a flash: one that comes due more than ``flash_s`` late shifts the rest
    of its character (counted in :attr:`shifts`). :meth:`stop_character` (dynamic stopping) ends
    the character in progress; :meth:`add_decision` records a decided symbol and ends the
    character it belongs to if that is still flashing. :meth:`hold` (the EEG stream is gone)
    ends the character in progress and starts no other until :meth:`release`.
    """

    def __init__(
        self,
        settings: SpellerSettings,
        markers: MarkerSink | None = None,
        planner: CharacterPlanner | None = None,
    ) -> None:
        self.settings = settings
        self.planner = planner if planner is not None else FlashPlanner(settings)
        self.markers = markers
        self.phase = SpellerPhase.IDLE
        self.current: CharacterState | None = None
        self.characters: list[CharacterState] = []
        self.decisions: list[str] = []
        self.shifts = 0  # flashes that came due > flash_s late and shifted their character
        self.markers_sent = 0
        self.held = ""  # why no character may start now ("": none)
        self.interrupted = 0  # characters ended by hold()
        self._next_anchor = 0.0

    # -- what to draw -----------------------------------------------------------------------
    @property
    def flash_code(self) -> int | None:
        """The code lit now (None outside a flash)."""
        on = self.current.on if self.current is not None else None
        return on.flash.code if on is not None and self.phase is SpellerPhase.FLASH else None

    @property
    def target(self) -> str | None:
        """The current character's target (copy spelling), None otherwise."""
        return self.current.planned.symbol if self.current is not None else None

    @property
    def character_index(self) -> int:
        """0-based index of the character in progress (or of the next one)."""
        return len(self.characters) - (1 if self.current is not None else 0)

    @property
    def awaiting_draw(self) -> bool:
        """A flash is lit but was not drawn yet: the GUI should paint it and report the time."""
        on = self.current.on if self.current is not None else None
        return on is not None and not on.reported and self.phase is SpellerPhase.FLASH

    # -- control ----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.phase is not SpellerPhase.IDLE:
            raise RuntimeError("the speller was already started")
        self.phase = SpellerPhase.PAUSE
        self._next_anchor = now + LEAD_S + self.settings.pause_s

    def tick(self, now: float) -> SpellerPhase:
        """Advance to ``now`` and return the phase."""
        if self.phase in (SpellerPhase.IDLE, SpellerPhase.FINISHED, SpellerPhase.ABORTED):
            return self.phase
        s = self.settings
        while True:
            char = self.current
            if self.held and (char is None or (char.next_flash == 0 and char.on is None)):
                self.phase = SpellerPhase.PAUSE  # no character starts flashing while held
                return self.phase
            if char is None:
                total = s.n_characters
                if total is not None and len(self.characters) >= total:
                    # after the last character's pause (its decision may come meanwhile)
                    done = now >= self._next_anchor
                    self.phase = SpellerPhase.FINISHED if done else SpellerPhase.PAUSE
                    return self.phase
                planned = self.planner.character(len(self.characters), self._next_anchor)
                self.current = char = CharacterState(planned, planned.first_flash)
                self.characters.append(char)
            if char.on is not None:
                on = char.on
                start = on.drawn if on.drawn is not None else on.planned
                if now < start + s.flash_s:
                    self.phase = SpellerPhase.FLASH
                    return self.phase
                char.on = None
                char.next_flash += 1
                continue
            flashes = char.planned.flashes
            if char.next_flash >= len(flashes):
                last_onset = char.anchor + flashes[-1].onset_s
                self._end_character(max(now, last_onset + s.soa_s))
                continue
            flash = flashes[char.next_flash]
            onset = char.anchor + flash.onset_s
            if now < onset:
                self.phase = SpellerPhase.PAUSE if char.next_flash == 0 else SpellerPhase.BLANK
                return self.phase
            if now - onset > s.flash_s:  # a stalled clock: show it now, shift the rest
                char.anchor += now - onset
                onset = now
                self.shifts += 1
            char.on = DrawnFlash(len(self.characters) - 1, flash, onset)
            char.drawn.append(char.on)
            self.phase = SpellerPhase.FLASH
            return self.phase

    def flash_drawn(self, stamp: float | None) -> None:
        """The flash lit now was drawn at ``stamp`` (LSL s): send its markers with that stamp.
        ``None``: it did not reach the screen (hidden window); no markers."""
        char = self.current
        if char is None or char.on is None or char.on.reported:
            return
        char.on.reported = True
        if stamp is None:
            return
        char.on.drawn = stamp
        if self.markers is not None:
            for label in char.on.flash.labels:
                self.markers.push(label, stamp)
                self.markers_sent += 1

    def seconds_to_next_change(self, now: float) -> float | None:
        """Time (s) until the phase changes, None when nothing is planned."""
        char, s = self.current, self.settings
        if self.held or self.phase in (
            SpellerPhase.IDLE,
            SpellerPhase.FINISHED,
            SpellerPhase.ABORTED,
        ):
            return None
        if char is None:
            return max(0.0, self._next_anchor - now)
        if char.on is not None:
            start = char.on.drawn if char.on.drawn is not None else char.on.planned
            return max(0.0, start + s.flash_s - now)
        flashes = char.planned.flashes
        if char.next_flash >= len(flashes):
            return 0.0
        return max(0.0, char.anchor + flashes[char.next_flash].onset_s - now)

    def stop_character(self, now: float) -> bool:
        """Dynamic stopping: end the character whose flashes are under way (the next one
        starts after the pause). False when none is (its pause, or nothing runs)."""
        char = self.current
        if char is None or self.phase not in (SpellerPhase.FLASH, SpellerPhase.BLANK):
            return False
        char.stopped_after = sum(1 for d in char.drawn if d.drawn is not None)
        char.on = None
        self._end_character(now)
        return True

    def hold(self, now: float, reason: str) -> None:
        """No EEG to read (``reason`` says why): end the character in progress (the flashes
        shown so far keep their markers; those the EEG missed are left out of training as
        epochs over a gap) and start no other until :meth:`release`."""
        if self.held or self.phase in (SpellerPhase.FINISHED, SpellerPhase.ABORTED):
            return
        self.held = reason
        if self.stop_character(now):
            self.interrupted += 1

    def release(self, now: float) -> None:
        """The EEG is back: the next character starts after the pause from ``now``."""
        if not self.held:
            return
        self.held = ""
        start = now + LEAD_S + self.settings.pause_s
        char = self.current
        if char is None:
            self._next_anchor = start
        elif char.next_flash == 0 and char.on is None:  # held before its first flash
            char.anchor = start

    def add_decision(self, symbol: str, now: float) -> bool:
        """A decided character. When it is the decision of the character still flashing (the
        decoder stopped early), that character ends; returns whether it did."""
        self.decisions.append(symbol)
        if self.current is not None and len(self.decisions) == len(self.characters):
            return self.stop_character(now)
        return False

    def abort(self) -> None:
        if self.phase not in (SpellerPhase.FINISHED, SpellerPhase.ABORTED):
            self.phase = SpellerPhase.ABORTED

    # -- results ----------------------------------------------------------------------------
    def drawn_flashes(self) -> list[DrawnFlash]:
        return [d for c in self.characters for d in c.drawn]

    def draw_lateness(self) -> np.ndarray:
        """Drawn minus planned onset (s) of every drawn flash."""
        return np.asarray(
            [d.drawn - d.planned for d in self.drawn_flashes() if d.drawn is not None]
        )

    def _end_character(self, end: float) -> None:
        self.current = None
        self._next_anchor = end + self.settings.pause_s
        self.phase = SpellerPhase.PAUSE
