"""Training data: trial windows cut from recordings, and the class map.

Offline windows are produced by the online code itself: each recording is fed, in order and
without gaps, through one :class:`DspStage` (:func:`~bci_app.dsp.feed.feed_recording`: causal
filters over the continuous recording, then the :class:`WindowCutter` grid counted from the first
sample), so a window used for training is the window the live app would cut from the same samples.

Conventions: signals are ``(n_samples, n_channels)`` float32 microvolts; event positions are
sample indices into ``Recording.data``; trial bounds are seconds relative to the cue.

Alignment and rounding (see :func:`extract_trials`; file reading and marker alignment: see
:mod:`bci_app.io`): stream sample ``c`` -> model-rate position ``c * up / down`` (the
resampler's exact ratio; model sample ``n`` sits at stream time ``n / model_rate``). A trial
spans model samples ``[lo, hi)`` with ``lo = floor(c * up / down + trial_start_s * model_rate +
0.5)`` and ``hi`` likewise from ``trial_stop_s``; its windows are the grid windows ``[k * hop,
k * hop + length)`` with ``lo <= k * hop`` and ``k * hop + length <= hi``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bci_app.config import AppConfig
from bci_app.dsp.feed import feed_recording, offline_stage
from bci_app.dsp.stage import DspStage
from bci_app.dsp.windows import Window
from bci_app.errors import InvalidArgument
from bci_app.io import Recording, RecordingError, label_key

__all__ = [
    "TrialWindows",
    "extract_trials",
    "parse_class_map",
    "trial_window_seqs",
    "trials_per_class",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Classes
# --------------------------------------------------------------------------------------------


def parse_class_map(items: Sequence[str]) -> dict[str, str]:
    """``["T1:hands", "T2:feet"]`` -> ``{"T1": "hands", "T2": "feet"}`` (event label -> class).

    Split at the last ``:`` (class names cannot hold one). Several labels may share a class;
    the class order is the order in which class names first appear. Raises ValueError for
    items without ``LABEL:CLASS``, empty parts or a label given twice.
    """
    if isinstance(items, str):
        items = items.split()
    mapping: dict[str, str] = {}
    for item in items:
        label, sep, name = str(item).rpartition(":")
        label, name = label.strip(), name.strip()
        if not sep or not label or not name:
            raise InvalidArgument(
                f"class item {item!r} is not LABEL:CLASS; write e.g. T1:hands T2:feet "
                "(event label, colon, class name)"
            )
        if label in mapping:
            raise InvalidArgument(
                f"event label {label!r} is given twice ({label}:{mapping[label]} and {item}); "
                "map each label to one class"
            )
        mapping[label] = name
    if not mapping:
        raise InvalidArgument("no classes given; write e.g. T1:hands T2:feet")
    return mapping


# --------------------------------------------------------------------------------------------
# Trial windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TrialWindows:
    """Model-ready windows of cued trials.

    Per window: ``x (n_windows, n_channels, n_samples)`` float32 µV (channels first),
    ``y`` int64 class index into ``classes``, ``trial`` int64 trial id, ``run`` int64 index into
    ``runs``, ``start`` int64 model-rate index of the window's first sample in its run.
    Per trial (indexed by trial id): ``trial_classes``, ``trial_runs``, ``trial_cues`` (cue
    sample index in the recording's data), ``trial_flagged`` (windows skipped: gap / non-finite),
    ``trial_onsets_s`` (the cue in seconds from its run's first sample, float64).
    ``labels``: channel labels; ``rate_hz``: model rate; ``runs``: run names; ``trial_span_s``:
    the trial span ``[start, stop)`` in seconds after the cue that the windows were cut from.

    :meth:`subset` keeps trial ids and the per-trial tables as they are, so ids stay valid
    across subsets; :func:`trials_per_class` counts only trials that have windows.
    """

    x: np.ndarray
    y: np.ndarray
    trial: np.ndarray
    run: np.ndarray
    start: np.ndarray
    classes: tuple[str, ...]
    labels: tuple[str, ...]
    rate_hz: float
    trial_classes: np.ndarray
    trial_runs: np.ndarray
    trial_cues: np.ndarray
    trial_flagged: np.ndarray
    runs: tuple[str, ...]
    trial_onsets_s: np.ndarray | None = None
    trial_span_s: tuple[float, float] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_trials(self) -> int:
        """Number of trials that have windows here."""
        return int(np.unique(self.trial).size)

    def subset(self, mask_or_indices: np.ndarray | Sequence[int] | Sequence[bool]) -> TrialWindows:
        """Windows selected by a boolean mask ``(n_windows,)`` or integer indices."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype == bool:
            if sel.shape != self.y.shape:
                raise ValueError(f"mask of shape {sel.shape} for {len(self)} windows")
        elif sel.size == 0:
            sel = sel.astype(np.intp)
        elif not np.issubdtype(sel.dtype, np.integer):
            raise ValueError(f"select windows with a boolean mask or integers, got {sel.dtype}")
        return TrialWindows(
            x=self.x[sel],
            y=self.y[sel],
            trial=self.trial[sel],
            run=self.run[sel],
            start=self.start[sel],
            classes=self.classes,
            labels=self.labels,
            rate_hz=self.rate_hz,
            trial_classes=self.trial_classes,
            trial_runs=self.trial_runs,
            trial_cues=self.trial_cues,
            trial_flagged=self.trial_flagged,
            runs=self.runs,
            trial_onsets_s=self.trial_onsets_s,
            trial_span_s=self.trial_span_s,
        )

    def with_x(self, x: np.ndarray) -> TrialWindows:
        """The same windows with other samples ``x`` of the same shape (e.g. aligned)."""
        if x.shape != self.x.shape:
            raise ValueError(f"windows of shape {x.shape} for {self.x.shape}")
        return dataclasses.replace(self, x=x)

    @classmethod
    def concatenate(cls, parts: Sequence[TrialWindows]) -> TrialWindows:
        """Join separately extracted sets (same classes, labels, rate and window shape); trial
        and run ids of later parts are shifted past those of earlier parts."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for part in parts[1:]:
            for what in ("classes", "labels", "rate_hz", "trial_span_s"):
                if getattr(part, what) != getattr(first, what):
                    raise ValueError(
                        f"cannot concatenate: {what} differ ({getattr(first, what)} vs "
                        f"{getattr(part, what)})"
                    )
            if part.x.shape[1:] != first.x.shape[1:]:
                raise ValueError(
                    f"cannot concatenate: window shapes differ ({first.x.shape[1:]} vs "
                    f"{part.x.shape[1:]})"
                )
        trial_offsets = np.cumsum([0] + [len(p.trial_classes) for p in parts[:-1]])
        run_offsets = np.cumsum([0] + [len(p.runs) for p in parts[:-1]])
        return cls(
            x=np.concatenate([p.x for p in parts]),
            y=np.concatenate([p.y for p in parts]),
            trial=np.concatenate([p.trial + o for p, o in zip(parts, trial_offsets, strict=True)]),
            run=np.concatenate([p.run + o for p, o in zip(parts, run_offsets, strict=True)]),
            start=np.concatenate([p.start for p in parts]),
            classes=first.classes,
            labels=first.labels,
            rate_hz=first.rate_hz,
            trial_classes=np.concatenate([p.trial_classes for p in parts]),
            trial_runs=np.concatenate(
                [p.trial_runs + o for p, o in zip(parts, run_offsets, strict=True)]
            ),
            trial_cues=np.concatenate([p.trial_cues for p in parts]),
            trial_flagged=np.concatenate([p.trial_flagged for p in parts]),
            runs=tuple(r for p in parts for r in p.runs),
            trial_onsets_s=None
            if any(p.trial_onsets_s is None for p in parts)
            else np.concatenate([p.trial_onsets_s for p in parts]),
            trial_span_s=first.trial_span_s,
        )

    def window_end_s(self) -> np.ndarray:
        """``(n_windows,)`` seconds from each window's trial cue to the end of the window (when
        a live session could first use it)."""
        if self.trial_onsets_s is None:
            raise ValueError("these trial windows carry no cue times (trial_onsets_s)")
        ends = (self.start + self.x.shape[2]) / self.rate_hz
        return ends - self.trial_onsets_s[self.trial]

    def summary(self) -> str:
        """One line per run: trials (windows) per class, and flagged windows skipped."""
        lines = []
        present = np.unique(self.trial)
        for r, name in enumerate(self.runs):
            ids = present[self.trial_runs[present] == r]
            parts = []
            for c, cls_name in enumerate(self.classes):
                trials = ids[self.trial_classes[ids] == c]
                n_win = int(np.isin(self.trial, trials).sum())
                parts.append(f"{cls_name} {trials.size} trials ({n_win} windows)")
            flagged = int(self.trial_flagged[self.trial_runs == r].sum())
            lines.append(f"{name}: {', '.join(parts)}; {flagged} flagged windows skipped")
        return "\n".join(lines)


def trials_per_class(tw: TrialWindows, trial_ids: np.ndarray | None = None) -> dict[str, int]:
    """Number of trials (with at least one window in ``tw``; or those of ``trial_ids``) per
    class, in class order."""
    ids = np.unique(tw.trial) if trial_ids is None else trial_ids
    counts = np.bincount(tw.trial_classes[ids], minlength=len(tw.classes))
    return {name: int(counts[i]) for i, name in enumerate(tw.classes)}


@dataclass
class _Trial:
    cue: int  # stream sample index of the cue
    label: str
    class_index: int
    first_seq: int
    last_seq: int
    span_s: tuple[float, float]
    windows: list[Window]
    flagged: int = 0


def trial_window_seqs(
    stage: DspStage, cue: int, trial_start_s: float, trial_stop_s: float
) -> tuple[int, int]:
    """First and last sequence number of ``stage``'s windows that lie fully inside the trial
    ``[cue + trial_start_s, cue + trial_stop_s)`` s; ``cue`` is a stream sample index counted
    from the stage's first sample (rounding: see the module docstring). ``first > last`` when no
    window fits."""
    up, down = stage.preprocessor.resampler.up, stage.preprocessor.resampler.down
    rate, hop, length = stage.rate_hz, stage.cutter.hop, stage.cutter.length
    position = cue * up / down  # model-rate index of the cue
    lo = math.floor(position + trial_start_s * rate + 0.5)
    hi = math.floor(position + trial_stop_s * rate + 0.5)
    return max(0, -(-lo // hop)), (hi - length) // hop


def _run_windows(
    recording: Recording,
    columns: np.ndarray,
    class_map: dict[str, str],
    classes: tuple[str, ...],
    config: AppConfig,
    trial_start_s: float,
    trial_stop_s: float,
) -> tuple[list[_Trial], float]:
    """Feed one recording through a fresh DspStage; returns its trials and the model rate."""
    stage = offline_stage(recording, len(columns), config)
    rate = stage.rate_hz

    trials: list[_Trial] = []
    wanted: dict[int, list[_Trial]] = {}
    for cue, label in recording.events:
        if label not in class_map:
            continue
        first, last = trial_window_seqs(stage, cue, trial_start_s, trial_stop_s)
        cue_s = cue / recording.rate_hz
        trial = _Trial(
            cue,
            label,
            classes.index(class_map[label]),
            first,
            last,
            (cue_s + trial_start_s, cue_s + trial_stop_s),
            [],
        )
        trials.append(trial)
        for seq in range(first, last + 1):
            wanted.setdefault(seq, []).append(trial)
    for a, b in zip(trials[:-1], trials[1:], strict=True):
        if b.first_seq <= a.last_seq:
            log.warning(
                "%s: trials at samples %d and %d overlap; their shared windows go to both",
                recording.source,
                a.cue,
                b.cue,
            )
    if not wanted:
        return trials, rate

    last_needed = max(wanted)
    for windows in feed_recording(recording, columns, stage, config):
        for window in windows:
            for trial in wanted.get(window.seq, ()):
                if window.usable:
                    trial.windows.append(window)
                else:
                    trial.flagged += 1
        if stage.cutter.next_seq > last_needed:
            break
    return trials, rate


def extract_trials(
    recordings: Sequence[Recording],
    class_map: dict[str, str],
    config: AppConfig,
    trial_start_s: float = 0.0,
    trial_stop_s: float = 4.0,
    channels: Sequence[str] | None = None,
) -> TrialWindows:
    """Cut the online-grid windows of every cued trial out of ``recordings``.

    Each recording runs through its own :class:`DspStage` built from ``config`` (filters,
    reference, model_rate, windows.length / windows.hop). A trial opens at every event whose
    label is a key of ``class_map`` and spans ``[cue + trial_start_s, cue + trial_stop_s)``
    seconds; its windows are those of the online grid that lie fully inside (rounding: see the
    module docstring). Windows flagged gap / non-finite are skipped and counted per trial;
    trials left without windows are dropped with a warning.

    ``channels`` (labels, case-insensitive; default ``config.channels.pick``, else the first
    recording's channels) are picked, in that order, before the DSP, as the live inlet does.
    Raises :class:`RecordingError` (a ValueError) for missing channels or when no trial has a
    window, ValueError for bad arguments.
    """
    if not recordings:
        raise InvalidArgument("no recordings given")
    if not class_map:
        raise InvalidArgument("empty class map; give e.g. T1:hands T2:feet")
    if not (math.isfinite(trial_start_s) and math.isfinite(trial_stop_s)):
        raise InvalidArgument("trial_start_s and trial_stop_s must be finite seconds")
    if trial_stop_s - trial_start_s < config.windows.length:
        raise InvalidArgument(
            f"the trial span [{trial_start_s:g}, {trial_stop_s:g}) s is shorter than one window "
            f"({config.windows.length:g} s); widen the span or shorten windows.length"
        )
    classes = tuple(dict.fromkeys(class_map.values()))
    pick = channels if channels is not None else config.channels.pick
    wanted = list(pick) if pick is not None else list(recordings[0].labels)
    if len({label_key(w) for w in wanted}) != len(wanted):
        raise InvalidArgument(f"channel list {wanted} names a channel twice")

    xs: list[np.ndarray] = []
    ys: list[int] = []
    trial_ids: list[int] = []
    run_ids: list[int] = []
    starts: list[int] = []
    trial_classes: list[int] = []
    trial_runs: list[int] = []
    trial_cues: list[int] = []
    trial_flagged: list[int] = []
    trial_onsets: list[float] = []
    labels: tuple[str, ...] | None = None
    model_rate: float | None = None
    seen_labels: set[str] = set()
    for run_index, recording in enumerate(recordings):
        columns = recording.columns(wanted)
        run_labels = tuple(recording.labels[i] for i in columns)
        labels = labels or run_labels
        if pick is None and len(columns) < len(recording.labels):
            extra = sorted(set(recording.labels) - set(run_labels))
            log.warning(
                "%s: channels %s are not in the first recording; ignored", recording.source, extra
            )
        seen_labels.update(label for _, label in recording.events)
        trials, rate = _run_windows(
            recording, columns, class_map, classes, config, trial_start_s, trial_stop_s
        )
        if model_rate is not None and rate != model_rate:
            raise RecordingError(
                f"{recording.source}: model rate {rate:g} Hz differs from {model_rate:g} Hz of "
                "the first recording; set model_rate in the config"
            )
        model_rate = rate
        for trial in trials:
            if not trial.windows:
                if trial.flagged:
                    why = f"all {trial.flagged} windows are flagged (gap / non-finite samples)"
                elif trial.first_seq > trial.last_seq:
                    why = "no window of the hop grid fits its span; widen the trial span"
                else:
                    why = (
                        f"its span {trial.span_s[0]:.2f}-{trial.span_s[1]:.2f} s is not inside "
                        f"the {recording.duration_s:.2f} s of data"
                    )
                log.warning(
                    "%s: trial %s at sample %d dropped: %s",
                    recording.source,
                    trial.label,
                    trial.cue,
                    why,
                )
                continue
            tid = len(trial_classes)
            trial_classes.append(trial.class_index)
            trial_runs.append(run_index)
            trial_cues.append(trial.cue)
            trial_flagged.append(trial.flagged)
            trial_onsets.append(trial.cue / recording.rate_hz)
            for window in trial.windows:
                xs.append(window.data)
                ys.append(trial.class_index)
                trial_ids.append(tid)
                run_ids.append(run_index)
                starts.append(window.start_index)

    missing = [label for label in class_map if label not in seen_labels]
    if missing:
        log.warning(
            "event label(s) %s of the class map occur in no recording (labels found: %s)",
            missing,
            sorted(seen_labels),
        )
    if not xs:
        raise RecordingError(
            f"no trial windows in {', '.join(r.source for r in recordings)}: class map "
            f"{class_map} vs event labels found {sorted(seen_labels)}; fix the class map or the "
            "trial span"
        )
    assert labels is not None and model_rate is not None
    n_samples = xs[0].shape[0]
    x = np.empty((len(xs), len(labels), n_samples), dtype=np.float32)
    for i, data in enumerate(xs):
        x[i] = data.T
    tw = TrialWindows(
        x=x,
        y=np.asarray(ys, dtype=np.int64),
        trial=np.asarray(trial_ids, dtype=np.int64),
        run=np.asarray(run_ids, dtype=np.int64),
        start=np.asarray(starts, dtype=np.int64),
        classes=classes,
        labels=labels,
        rate_hz=float(model_rate),
        trial_classes=np.asarray(trial_classes, dtype=np.int64),
        trial_runs=np.asarray(trial_runs, dtype=np.int64),
        trial_cues=np.asarray(trial_cues, dtype=np.int64),
        trial_flagged=np.asarray(trial_flagged, dtype=np.int64),
        runs=tuple(r.run for r in recordings),
        trial_onsets_s=np.asarray(trial_onsets, dtype=np.float64),
        trial_span_s=(float(trial_start_s), float(trial_stop_s)),
    )
    log.info("trial windows per run:\n%s", tw.summary())
    return tw
