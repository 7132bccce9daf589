"""The ERP paradigm inside a live pipeline: stimulus markers -> flashes -> epochs cut by the dsp
stage -> the worker (every epoch, in order) -> the speller -> decided characters.

Runs on two threads: :meth:`ErpStage.step` on the dsp thread (markers in, epochs out to the
worker; a character whose markers stopped is decided there), :meth:`ErpStage.on_prediction` on
the worker thread (scores in, characters out).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from bci_app.config import ParadigmConfig
from bci_app.dsp.stage import DspStage
from bci_app.dsp.windows import Window
from bci_app.infer.speller import Flash, FlashAssembler, OnlineSpeller, SpelledCharacter
from bci_app.infer.worker import Prediction
from bci_app.stream.markers import MarkerInlet
from bci_app.stream.ring import RingBuffer, RingOverrun

__all__ = ["ErpStage", "ErpStats"]

log = logging.getLogger(__name__)

#: A flash's markers arrive together; one still waiting for more this long is complete (s).
MARKER_SETTLE_S = 0.1
#: Markers silent this long after a character's flashes (s): the character is decided with
#: the repetitions it had, instead of when the next character's first flash arrives (the last
#: one of a session has none). Longer than an epoch (0.8 s) and its classification, shorter
#: than the pause between characters (2-2.5 s); with a shorter pause the next flash decides.
CHARACTER_END_S = 1.5
#: An epoch handed to the worker and not scored this long after is taken as skipped (a gap or
#: NaN inside) or failed: a character ending on silence stops waiting for it (s).
EPOCH_SCORE_TIMEOUT_S = 2.0
#: A flash whose time the EEG has not reached this long after it counts as missed (s): the EEG
#: stopped or stalls (a replay's end, an amplifier switched off), and neither a character ending
#: on silence nor the queue of waiting flashes may wait for it without end.
EEG_WAIT_TIMEOUT_S = 2.0
#: Markers without a single flash after which the marker stream is named as the wrong one.
NO_FLASH_WARNING = 20
#: Characters kept for the status (the outlet has them all).
RECENT_CHARACTERS = 64


@dataclass(frozen=True)
class ErpStats:
    """Flashes assembled, epochs asked for and cut, flashes whose EEG had left the ring or never
    came (``missed``), markers the marker inlet dropped, characters decided (most recent last)."""

    flashes: int
    epochs: int
    missed: int
    dropped_markers: int
    characters: tuple[str, ...]


class ErpStage:
    """Turns the marker stream into epoch requests on ``stage`` (whose raw ring is
    ``raw_ring``) and epoch predictions into characters, passed to ``on_character``."""

    def __init__(
        self,
        markers: MarkerInlet,
        stage: DspStage,
        raw_ring: RingBuffer,
        paradigm: ParadigmConfig,
        on_character: Callable[[SpelledCharacter, float], None],
    ) -> None:
        self.markers = markers
        self.stage = stage
        self.raw_ring = raw_ring
        self.speller = OnlineSpeller(paradigm.matrix, paradigm.stop_posterior)
        self._on_character = on_character
        self._assembler = FlashAssembler(paradigm.n_codes)
        self._newest_marker: float | None = None
        self._waiting: collections.deque[Flash] = collections.deque()
        # epochs handed to the worker and not scored yet: window seq -> (flash, handed at)
        self._unscored: dict[int, tuple[Flash, float]] = {}
        self._flashes = self._epochs = self._missed = self._markers = 0
        self._warned = False
        # The worker thread adds scores, the dsp thread ends a character whose markers stopped.
        self._speller_lock = threading.Lock()
        self._characters: collections.deque[str] = collections.deque(maxlen=RECENT_CHARACTERS)

    def stats(self) -> ErpStats:
        return ErpStats(
            self._flashes,
            self._epochs,
            self._missed,
            self.markers.dropped,
            tuple(self._characters),
        )

    def step(self, now: float) -> list[Window]:
        """Dsp thread, after ``stage.process`` and whenever it waited for EEG in vain: take new
        markers, ask for the epochs of the flashes whose time the EEG has reached, and return
        the epochs cut (to classify). A character whose markers stopped is decided once the
        worker has scored its epochs, also when the EEG stopped with them (end of a replay,
        an amplifier switched off)."""
        for timestamp, label in self.markers.take():
            self._newest_marker = timestamp
            self._markers += 1
            self._add(self._feed(timestamp, label))
        if self._markers >= NO_FLASH_WARNING and not self._flashes and not self._warned:
            self._warned = True
            log.warning(
                "%d markers from %s and not one flash: a P300 model needs code<N> at each "
                "flash (with char:<X> at a character's first, target/nontarget in copy "
                "spelling); point stream.markers at the speller's marker stream",
                self._markers,
                self.markers.source_id,
            )
        if self._newest_marker is not None and now - self._newest_marker > MARKER_SETTLE_S:
            self._add(self._assembler.flush())
        while self._waiting:
            try:
                position = self.raw_ring.position_of(self._waiting[0].position)
            except RingOverrun:
                self._missed += 1
                self._waiting.popleft()
                continue
            if position is None:
                if now - self._waiting[0].position <= EEG_WAIT_TIMEOUT_S:
                    break  # the EEG has not reached this flash yet
                self._missed += 1
                self._waiting.popleft()
                continue
            flash = self._waiting.popleft()
            # The raw sample the flash falls on, as offline (a recording's sample index): the
            # inlet's smoothed timestamps moved positions by up to 0.003 samples, which tipped
            # every other 0.175 s flash (half-way between two 60 Hz samples) to the other one.
            self.stage.request_epoch(float(round(position)), flash)
        epochs = []
        for flash, window in self.stage.take_epochs():
            if window.usable:  # the worker skips the others: no score will come
                with self._speller_lock:
                    self._unscored[window.seq] = (flash, now)  # type: ignore[assignment]
            self._epochs += 1
            epochs.append(window)
        with self._speller_lock:
            self._forget_unscorable(now)
            if (
                self._newest_marker is not None
                and now - self._newest_marker > CHARACTER_END_S
                and not self._waiting
                and not self._unscored
            ):
                self._publish(self.speller.finish(), now)
        return epochs

    def _forget_unscorable(self, now: float) -> None:
        """Stop waiting for epochs handed over longer than :data:`EPOCH_SCORE_TIMEOUT_S` ago
        (the worker skipped or failed them; lock held)."""
        lost = [
            seq
            for seq, (_, handed) in self._unscored.items()
            if now - handed > EPOCH_SCORE_TIMEOUT_S
        ]
        for seq in lost:
            del self._unscored[seq]

    def _feed(self, timestamp: float, label: str) -> list[Flash]:
        try:
            return self._assembler.feed(timestamp, label)
        except ValueError as exc:
            log.warning("speller markers: %s; the flash is ignored", exc)
            return []

    def _add(self, flashes: list[Flash]) -> None:
        self._flashes += len(flashes)
        self._waiting.extend(flashes)

    def on_prediction(self, prediction: Prediction) -> None:
        """Worker thread: one epoch's target probability into the speller."""
        with self._speller_lock:
            unscored = self._unscored.pop(prediction.seq, None)
            if unscored is None:
                return
            for character in self.speller.add(unscored[0], prediction.probabilities):
                self._publish(character, prediction.timestamp)

    def _publish(self, character: SpelledCharacter | None, timestamp: float) -> None:
        if character is not None:
            self._characters.append(character.symbol)
            self._on_character(character, timestamp)
