"""P300 speller data and decisions: one epoch per flash, cut through the online dsp, and
characters from the epochs' summed scores.

Markers, as the shared files and a live speller carry them, at each flash onset: ``code<N>``
(which row or column flashed: codes ``1..n_columns`` are the columns of the matrix, the next
``n_rows`` its rows), ``target`` / ``nontarget`` when the character being spelled is known (copy
spelling), and ``char:<X>`` at the first flash of each character (``char:?`` when free).

Decision: each epoch's score is the log-odds of "target" given by the decoder; per character,
the scores of each code are summed over its repetitions, and the character is the cell at the
best column and the best row. Dynamic stopping ends a character after the first repetition at
which the posterior of its best cell (a softmax over cells of row score + column score) passes
``paradigm.stop_posterior``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bci_app.config import AppConfig
from bci_app.dsp.feed import feed_recording, offline_stage
from bci_app.dsp.windows import Window
from bci_app.errors import InvalidArgument
from bci_app.infer.speller import (
    UNKNOWN_SYMBOL,
    Flash,
    FlashAssembler,
    OnlineSpeller,
    SpelledCharacter,
    best_cell,
    cell_scores,
    flash_log_odds,
)
from bci_app.io import Recording, RecordingError
from bci_app.train.data import TrialWindows
from bci_app.train.metrics import wolpaw_bits

__all__ = [
    "ERP_CLASSES",
    "FlashEpochs",
    "cut_flash_epochs",
    "extract_flash_epochs",
    "flash_epochs_of",
    "speller_metrics",
]

log = logging.getLogger(__name__)

ERP_CLASSES = ("nontarget", "target")


@dataclass(frozen=True, eq=False)
class FlashEpochs:
    """One epoch per flash, in time order.

    Per epoch: ``x (n, C, T)`` float32 µV from the flash onset, ``target`` (1 target, 0
    non-target, -1 not known), ``code`` (1-based flash code), ``character`` (index into
    ``chars``), ``repetition`` (0-based: earlier flashes of that code in the character), ``run``
    (index into ``runs``), ``onset_s`` (flash time in seconds from its run's first sample).
    ``chars``: per character, the symbol being spelled (:data:`UNKNOWN_SYMBOL` if not known).
    ``flagged``: epochs skipped (gap / non-finite samples, or cut off by the end of a run).
    """

    x: np.ndarray
    target: np.ndarray
    code: np.ndarray
    character: np.ndarray
    repetition: np.ndarray
    run: np.ndarray
    onset_s: np.ndarray
    chars: tuple[str, ...]
    labels: tuple[str, ...]
    rate_hz: float
    runs: tuple[str, ...]
    flagged: int = 0

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_codes(self) -> int:
        return int(self.code.max())

    def trial_windows(self) -> TrialWindows:
        """The epochs of known target state as trial windows: each flash one trial, classes
        :data:`ERP_CLASSES` (what every decoder and the trainer take)."""
        known = np.flatnonzero(self.target >= 0)
        if known.size == 0:
            raise RecordingError(
                "no flash says target or nontarget; training needs copy-spelling runs whose "
                "flashes carry target/nontarget markers"
            )
        y = self.target[known].astype(np.int64)
        ids = np.arange(known.size, dtype=np.int64)
        return TrialWindows(
            x=self.x[known],
            y=y,
            trial=ids,
            run=self.run[known],
            start=np.zeros(known.size, dtype=np.int64),
            classes=ERP_CLASSES,
            labels=self.labels,
            rate_hz=self.rate_hz,
            trial_classes=y,
            trial_runs=self.run[known],
            trial_cues=np.round(self.onset_s[known] * self.rate_hz).astype(np.int64),
            trial_flagged=np.zeros(known.size, dtype=np.int64),
            runs=self.runs,
            trial_onsets_s=self.onset_s[known],
            trial_span_s=None,
        )

    def subset(self, mask: np.ndarray) -> FlashEpochs:
        """The epochs where ``mask (n,)`` is true (character indices stay valid)."""
        fields = ("x", "target", "code", "character", "repetition", "run", "onset_s")
        return dataclasses.replace(self, **{f: getattr(self, f)[mask] for f in fields})


def _flashes(recording: Recording, n_codes: int) -> tuple[list[Flash], list[str]]:
    """The flashes of one recording in time order (positions: sample indices), and the symbol
    of each of its characters (``n_codes``: the speller matrix's flash codes)."""
    assembler = FlashAssembler(n_codes)
    flashes: list[Flash] = []
    try:
        for sample, label in sorted(recording.events, key=lambda event: event[0]):
            flashes += assembler.feed(int(sample), str(label))
    except ValueError as exc:
        raise RecordingError(f"{recording.source}: {exc}") from None
    return flashes + assembler.flush(), assembler.symbols


def _run_epochs(
    recording: Recording, columns: np.ndarray, flashes: list[Flash], config: AppConfig
) -> tuple[list[tuple[Flash, Window]], int, float]:
    """Feed one recording through a fresh DspStage, asking for each flash's epoch a block
    ahead of its samples; returns the ``(flash, epoch)`` pairs cut, the number of flashes
    left without an epoch (past the end, or overwritten: never with this look-ahead) and the
    model rate (Hz)."""
    stage = offline_stage(recording, len(columns), config)
    block = stage.raw_ring.capacity
    asked = 0
    cut: list[tuple[Flash, Window]] = []
    for _ in itertools.chain([None], feed_recording(recording, columns, stage, config)):
        cut += stage.take_epochs()  # type: ignore[arg-type]
        while asked < len(flashes) and flashes[asked].position < stage.cursor + block:
            stage.request_epoch(flashes[asked].position, flashes[asked])
            asked += 1
    assert stage.epochs is not None  # request_epoch refuses a paradigm without epochs
    return cut, stage.epochs.pending + stage.epochs.missed + len(flashes) - asked, stage.rate_hz


def cut_flash_epochs(
    recording: Recording, columns: np.ndarray, config: AppConfig
) -> tuple[list[tuple[Flash, Window]], list[str], int, float]:
    """The epoch of every flash of one recording, cut by the online dsp: ``(flash, epoch)``
    pairs in time order (flagged epochs included), the symbol of each character, the flashes
    left without an epoch, and the model rate (Hz). Raises :class:`RecordingError` when the
    recording has no flash markers."""
    flashes, chars = _flashes(recording, config.paradigm.n_codes)
    if not flashes:
        labels = sorted({label for _, label in recording.events})[:12]
        raise RecordingError(
            f"{recording.source}: no flash markers (code<N>) among its events {labels}; a "
            "P300 recording marks each flash with code<N> and target/nontarget"
        )
    cut, skipped, rate = _run_epochs(recording, columns, flashes, config)
    return cut, chars, skipped, rate


def extract_flash_epochs(
    recordings: Sequence[Recording],
    config: AppConfig,
    channels: Sequence[str] | None = None,
) -> FlashEpochs:
    """Cut ``config.paradigm.epoch`` after every flash of ``recordings`` from the online dsp
    (each recording through its own :class:`DspStage`, as the live app filters it); flagged
    epochs are left out and counted.

    ``channels``: labels picked in that order (default ``config.channels.pick``, else the first
    recording's). Raises :class:`RecordingError` when a recording has no flash markers."""
    if not recordings:
        raise InvalidArgument("no recordings given")
    pick = channels if channels is not None else config.channels.pick
    wanted = list(pick) if pick is not None else list(recordings[0].labels)
    runs = []
    for recording in recordings:
        cut, chars, skipped, rate = cut_flash_epochs(recording, recording.columns(wanted), config)
        runs.append((cut, chars, skipped, recording.rate_hz))
    first = recordings[0]
    return flash_epochs_of(
        runs,
        tuple(first.labels[i] for i in first.columns(wanted)),
        rate,
        tuple(r.run for r in recordings),
    )


def flash_epochs_of(
    runs: Sequence[tuple[list[tuple[Flash, Window]], list[str], int, float]],
    labels: tuple[str, ...],
    rate_hz: float,
    run_names: tuple[str, ...],
) -> FlashEpochs:
    """:class:`FlashEpochs` of the usable epochs of runs as :func:`cut_flash_epochs` gives
    them (the last item: the recording's stream rate, for the flash times in seconds)."""
    xs: list[np.ndarray] = []
    table: list[tuple[int, int, int, int, int, float]] = []
    chars: list[str] = []
    flagged = 0
    for run_index, (cut, run_chars, skipped, stream_rate) in enumerate(runs):
        first_character = len(chars)
        chars += run_chars
        flagged += skipped
        for flash, window in cut:
            if not window.usable:
                flagged += 1
                continue
            xs.append(window.data.T)
            table.append(
                (
                    flash.target,
                    flash.code,
                    first_character + flash.character,
                    flash.repetition,
                    run_index,
                    flash.position / stream_rate,
                )
            )
    if flagged:
        log.warning("%d flash epochs skipped (gaps, non-finite samples or past the end)", flagged)
    if not xs:
        raise RecordingError("no usable flash epoch in the recordings")
    columns_of = np.array(table, dtype=np.float64)
    return FlashEpochs(
        x=np.stack(xs).astype(np.float32),
        target=columns_of[:, 0].astype(np.int64),
        code=columns_of[:, 1].astype(np.int64),
        character=columns_of[:, 2].astype(np.int64),
        repetition=columns_of[:, 3].astype(np.int64),
        run=columns_of[:, 4].astype(np.int64),
        onset_s=columns_of[:, 5],
        chars=tuple(chars),
        labels=labels,
        rate_hz=float(rate_hz),
        runs=run_names,
        flagged=flagged,
    )


def _flash_timing(epochs: FlashEpochs) -> tuple[float, float]:
    """``(stimulus onset asynchrony, pause between characters)`` in seconds, from the real
    flash times: the median interval between flashes within a character, and the median gap
    from a character's last flash to the next character's first, less one interval."""
    within, between = [], []
    for r in np.unique(epochs.run):
        onsets, characters = epochs.onset_s[epochs.run == r], epochs.character[epochs.run == r]
        steps = np.diff(onsets)
        same = characters[1:] == characters[:-1]
        within += steps[same & (steps > 0)].tolist()
        between += steps[~same].tolist()
    soa = float(np.median(within)) if within else 0.0
    pause = max(0.0, float(np.median(between)) - soa) if between else 0.0
    return soa, pause


def speller_metrics(
    probabilities: np.ndarray, epochs: FlashEpochs, matrix: Sequence[str], stop_posterior: float
) -> dict:
    """Character accuracy against repetitions, ITR from the real flash timing, and dynamic
    stopping, for target probabilities ``(n, 2)`` of ``epochs`` (characters with a known
    symbol are scored)."""
    n_rows, n_columns = len(matrix), len(matrix[0])
    if epochs.n_codes > n_rows + n_columns:
        raise InvalidArgument(
            f"flash code {epochs.n_codes} is beyond the {n_rows}x{n_columns} matrix (codes 1-"
            f"{n_rows + n_columns}); set paradigm.matrix to the speller's rows"
        )
    scores = flash_log_odds(probabilities)
    symbols = np.array(list("".join(matrix))).reshape(n_rows, n_columns)
    max_repetitions = int(epochs.repetition.max()) + 1
    soa, pause = _flash_timing(epochs)
    known = [c for c in np.unique(epochs.character) if epochs.chars[c] != UNKNOWN_SYMBOL]
    spelled: dict[int, list[str]] = {r: [] for r in range(1, max_repetitions + 1)}
    for c in np.unique(epochs.character):
        mine = epochs.character == c
        for r in range(1, max_repetitions + 1):
            upto = mine & (epochs.repetition < r)
            cells = cell_scores(scores[upto], epochs.code[upto], n_rows, n_columns)
            spelled[r].append(str(symbols[best_cell(cells)[0]]))
    # Dynamic stopping exactly as the live speller stops: flash by flash, in time order.
    online = OnlineSpeller(matrix, stop_posterior)
    decided: list[SpelledCharacter] = []
    for i in np.argsort(epochs.run * 1e9 + epochs.onset_s, kind="stable"):
        flash = Flash(
            float(epochs.onset_s[i]), int(epochs.code[i]), int(epochs.target[i]),
            int(epochs.character[i]), epochs.chars[epochs.character[i]],
            int(epochs.repetition[i]),
        )  # fmt: skip
        decided += online.add(flash, probabilities[i])
    last = online.finish()
    decided += [last] if last is not None else []
    scored = [d for d in decided if d.asked != UNKNOWN_SYMBOL]
    stopped_right = [d.symbol == d.asked for d in scored]
    stopped_at = [d.flashes / (n_rows + n_columns) for d in scored]
    order = list(np.unique(epochs.character))
    truth = [epochs.chars[c] for c in order]
    n_known = len(known)

    def accuracy(guesses: list[str]) -> float | None:
        if not n_known:
            return None
        right = sum(g == t for g, t in zip(guesses, truth, strict=True) if t != UNKNOWN_SYMBOL)
        return round(right / n_known, 4)

    def itr(acc: float | None, seconds: float) -> float | None:
        if acc is None or seconds <= 0:
            return None
        return round(wolpaw_bits(acc, symbols.size) * 60.0 / seconds, 3)

    n_codes = n_rows + n_columns
    by_r = {str(r): accuracy(spelled[r]) for r in spelled}
    seconds = {str(r): round(r * n_codes * soa + pause, 3) for r in spelled}
    dynamic_accuracy = round(float(np.mean(stopped_right)), 4) if stopped_right else None
    mean_repetitions = float(np.mean(stopped_at)) if stopped_at else math.nan
    return {
        "n_characters": n_known,
        "symbols": int(symbols.size),
        "chance": round(1.0 / symbols.size, 4),
        "accuracy_by_repetitions": by_r,
        "itr_bits_per_min_by_repetitions": {r: itr(by_r[r], seconds[r]) for r in by_r},
        "seconds_per_character": seconds,
        "flash_soa_s": round(soa, 4),
        "pause_between_characters_s": round(pause, 3),
        "spelled": {r: "".join(spelled[int(r)]) for r in by_r},
        "truth": "".join(truth),
        "dynamic_stopping": {
            "stop_posterior": stop_posterior,
            "accuracy": dynamic_accuracy,
            # flashes until the decision, in repetitions of all codes (may be fractional)
            "mean_repetitions": round(mean_repetitions, 3) if stopped_at else None,
            "itr_bits_per_min": itr(dynamic_accuracy, mean_repetitions * n_codes * soa + pause)
            if stopped_at
            else None,
            # per character decided, in order (free ones too): what the live speller shows
            "spelled": "".join(d.symbol for d in decided),
            "asked": "".join(d.asked for d in decided),
            "repetitions": [d.repetitions for d in decided],
            "stopped_early": [d.stopped_early for d in decided],
            "n_scored": len(scored),
        },
    }
