"""Typed application configuration loaded from ``config.yaml``.

Every field is validated when the file is loaded. Errors name the field path (``filters.notch``),
the value found and what is allowed; unknown keys are refused so that a typo never falls back to a
silent default.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bci_app.errors import UserError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveHz = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: ``bci-app train --decoder`` and calibration: se/eca/cbam are the attention network, the rest
#: classical decoders (riemann, mdm, csp-lda: motor imagery; xdawn-riemann, lda: P300; fbcca,
#: fb-riemann: SSVEP); ``auto`` chooses on the calibration data alone.
DECODER_CHOICES = (
    "se",
    "eca",
    "cbam",
    "riemann",
    "mdm",
    "csp-lda",
    "xdawn-riemann",
    "lda",
    "fbcca",
    "fb-riemann",
    "auto",
)
#: Seconds ``auto`` may take; a network whose folds would not fit is left out, with the reason.
AUTO_BUDGET_S = 30.0
#: Re-referencing: "none" keeps the amplifier's reference, "car" subtracts the common average.
Reference = Literal["none", "car"]


class ConfigError(UserError, ValueError):
    """The configuration file is missing, unreadable or invalid; the message says how to fix it."""


class _Section(BaseModel):
    # No section accepts .inf or .nan: every number here is a finite amount.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class StreamConfig(_Section):
    """Which LSL stream to read. With no selector set, the built-in simulator is started."""

    source_id: str | None = None
    name: str | None = None
    type: str | None = None
    resolve_timeout: PositiveSeconds = 5.0
    expected_rate: PositiveHz | None = None
    expected_channels: Annotated[int, Field(gt=0)] | None = None
    # liblsl's own configuration file (lsl_api.cfg: KnownPeers, SessionID, ResolveScope, ...),
    # e.g. for networks that block multicast; null: liblsl's search (LSLAPICFG, ./lsl_api.cfg,
    # ~/lsl_api/lsl_api.cfg, /etc/lsl_api/lsl_api.cfg). Also `bci-app --lsl-config F`.
    lsl_config: str | None = None
    # ERP paradigms: source_id of the stimulus marker stream; null: the simulator's, else the
    # input's source_id + "-markers" (the convention of bci-app's own sources and replays).
    markers: str | None = None

    @property
    def uses_simulator(self) -> bool:
        return self.source_id is None and self.name is None and self.type is None


class SimulatorConfig(_Section):
    """The embedded simulator, started in-process when no stream selector is configured."""

    paradigm: Literal["mi", "p300", "ssvep"] = "mi"
    channels: Literal[8, 64, 256] = 64
    rate: Annotated[float, Field(ge=128, le=4096)] = 160.0
    seed: int = 0
    classes: Annotated[list[str], Field(min_length=2)] = ["left_hand", "right_hand", "feet", "rest"]
    line_freq: Literal[50, 60] | None = 50


class ChannelsConfig(_Section):
    pick: Annotated[list[str], Field(min_length=1)] | None = None
    reference: Reference = "none"


class FiltersConfig(_Section):
    """Causal filters: band-pass edges [low, high] (Hz, null: that side open), Butterworth
    order, notch (Hz, null: off) and its quality factor, and the phase of the resampler's
    anti-aliasing FIR ("minimum": a few ms of delay in the EEG bands, "linear": half its length,
    40 ms at 1 kHz -> 250 Hz)."""

    bandpass: Annotated[list[PositiveHz | None], Field(min_length=2, max_length=2)] | None = [
        1.0,
        40.0,
    ]
    order: Annotated[int, Field(ge=1, le=8)] = 3
    notch: Literal[50, 60] | None = 50
    notch_quality: Annotated[float, Field(gt=0, le=200)] = 30.0
    resampler_phase: Literal["minimum", "linear"] = "minimum"

    @field_validator("bandpass")
    @classmethod
    def _edges_ordered(cls, band: list[float | None] | None) -> list[float | None] | None:
        if band is not None:
            low, high = band
            if low is None and high is None:
                raise ValueError("give at least one edge, or set bandpass: null")
            if low is not None and high is not None and low >= high:
                raise ValueError(f"low edge {low} Hz must be below the high edge {high} Hz")
        return band


class DspConfig(FiltersConfig):
    """The preprocessing a model is trained with and must get at inference: the ``filters``
    section plus ``channels.reference``; a checkpoint's ``dsp`` (same keys and limits)."""

    reference: Reference

    @classmethod
    def from_config(cls, config: AppConfig) -> DspConfig:
        """The dsp settings of an app config."""
        return cls(**config.filters.model_dump(), reference=config.channels.reference)

    def apply_to(self, config: AppConfig) -> AppConfig:
        """``config`` with these filters and this reference (``channels.pick`` is kept)."""
        filters = FiltersConfig(**self.model_dump(exclude={"reference"}))
        channels = config.channels.model_copy(update={"reference": self.reference})
        return config.model_copy(update={"filters": filters, "channels": channels})


class WindowsConfig(_Section):
    length: PositiveSeconds = 2.0
    hop: PositiveSeconds = 0.25

    @model_validator(mode="after")
    def _hop_within_window(self) -> WindowsConfig:
        if self.hop > self.length:
            raise ValueError(
                f"hop {self.hop} s is longer than the window length {self.length} s, "
                "which would skip data; use hop <= length"
            )
        return self


class RingConfig(_Section):
    capacity: Annotated[float, Field(ge=1, le=3600)] = 30.0


class HealthConfig(_Section):
    """Ages of the newest sample (seconds) at which the stream state changes."""

    stale_after: PositiveSeconds = 0.5
    recover_after: PositiveSeconds = 2.0
    lost_after: PositiveSeconds = 30.0
    gap_tolerance: PositiveSeconds = 0.05

    @model_validator(mode="after")
    def _increasing(self) -> HealthConfig:
        if not self.stale_after < self.recover_after < self.lost_after:
            raise ValueError(
                "need stale_after < recover_after < lost_after, got "
                f"{self.stale_after} / {self.recover_after} / {self.lost_after} s"
            )
        return self


class SchedulingConfig(_Section):
    """SCHED_FIFO priority (1-99) of the acquisition threads: liblsl's receiver, the inlet and
    the dsp thread. null keeps normal scheduling. See :mod:`bci_app.scheduling`."""

    realtime_priority: Annotated[int, Field(ge=1, le=99)] | None = 10
    # How long a Python thread may hold the interpreter lock while another waits for it (ms):
    # Python's 5 ms default let a window wait up to 5 ms for the worker thread. null: Python's.
    gil_switch_ms: Annotated[float, Field(gt=0, le=100)] | None = 0.5


class ModelConfig(_Section):
    """Read by the inference worker: checkpoint folder (null: the shipped default) and device."""

    path: str | None = None
    device: Literal["auto", "cuda", "cpu"] = "auto"
    cuda_graph: bool = True
    cpu_runtime: Literal["onnxruntime", "torch"] = "onnxruntime"
    cpu_threads: Annotated[int, Field(ge=1, le=64)] = 1
    # ONNX Runtime only: run the model once on the last window just before the next one is due,
    # so that it finds the caches warm (paced batch-1 inference was 2-3x slower than back to
    # back); torch eager (the tangent body) gained nothing from it.
    keep_warm: bool = True
    # Unsupervised adaptation of an aligned decoder's reference to the session (no labels):
    # null keeps the checkpoint's setting, true / false turn it on / off.
    adapt: bool | None = None


class BudgetsConfig(_Section):
    """Latency budgets in milliseconds, checked by the inference worker."""

    total_ms: Annotated[float, Field(gt=0)] = 50.0
    inference_ms: Annotated[float, Field(gt=0)] = 10.0
    staleness_ms: Annotated[float, Field(gt=0)] = 250.0


class GuiConfig(_Section):
    refresh_hz: Annotated[float, Field(ge=1, le=120)] = 30.0
    trace_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # Run the pipeline in its own process, so painting cannot hold up acquisition and inference
    # (PyQt keeps the GIL while Qt paints); false: threads in the GUI process.
    separate_process: bool = True


class OutletsConfig(_Section):
    """LSL outlets through which the app publishes what it decided."""

    enabled: bool = True
    name_prefix: str = "bci-app"
    source_id_prefix: str = "bci-app"
    jsonl: str | None = None  # path of a JSON-lines log of predictions; null: no log
    # Shared by every outlet of one worker (in each source_id and description), so that a
    # viewer binds to one worker and never mixes two. null: a new one each time a pipeline runs.
    session_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None


#: The P300 speller matrix of Farwell and Donchin (1988) as BCI2000 shows it: flash codes 1-6
#: are its columns, 7-12 its rows.
SPELLER_MATRIX = ("ABCDEF", "GHIJKL", "MNOPQR", "STUVWX", "YZ1234", "56789_")

#: SSVEP: the class of no stimulation (the no-control state); every other class is a
#: stimulation frequency named ``<number>Hz``.
SSVEP_REST = "rest"
_FREQUENCY_CLASS = re.compile(r"^(\d+(?:\.\d+)?)\s*hz$", re.IGNORECASE)


def stimulation_frequency(class_name: str) -> float | None:
    """The flicker frequency (Hz) an SSVEP class name stands for (``13Hz`` -> 13.0), None for
    ``rest``; ValueError, saying how to name classes, for anything else."""
    if class_name.strip().lower() == SSVEP_REST:
        return None
    match = _FREQUENCY_CLASS.match(class_name.strip())
    if not match:
        raise ValueError(
            f"SSVEP class {class_name!r} is not a stimulation frequency; name classes "
            "'<number>Hz' (e.g. 13Hz) and 'rest' for no stimulation"
        )
    return float(match.group(1))


#: The three paradigm families: motor imagery (a cue, then sliding windows), event-related
#: potentials (one epoch after each stimulus) and SSVEP (windows over a stimulation period).
PARADIGM_CHOICES = ("mi", "p300", "ssvep")


class ParadigmConfig(_Section):
    """What a trial is, how windows are cut and how decisions are made (see
    :data:`PARADIGM_CHOICES`). ``epoch``: an ERP epoch in seconds after its stimulus;
    ``matrix``: the speller's rows (codes 1..n_columns are columns, then rows);
    ``stop_posterior``: dynamic stopping ends a character once its posterior passes this."""

    kind: Literal["mi", "p300", "ssvep"] = "mi"
    epoch: Annotated[
        list[Annotated[float, Field(ge=0, le=2)]], Field(min_length=2, max_length=2)
    ] = [0.0, 0.8]
    matrix: Annotated[list[Annotated[str, Field(min_length=2)]], Field(min_length=2)] = list(
        SPELLER_MATRIX
    )
    stop_posterior: Annotated[float, Field(gt=0.5, le=1.0)] = 0.95

    @model_validator(mode="after")
    def _well_formed(self) -> ParadigmConfig:
        start, stop = self.epoch
        if stop <= start:
            raise ValueError(f"epoch end {stop} s must be after its start {start} s")
        if len({len(row) for row in self.matrix}) != 1:
            raise ValueError("every row of matrix needs the same number of symbols")
        symbols = "".join(self.matrix)
        if len(set(symbols)) != len(symbols):
            raise ValueError("a symbol appears twice in matrix; each cell needs its own")
        return self

    @property
    def erp(self) -> bool:
        """Windows are epochs locked to stimulus markers (not a sliding grid)."""
        return self.kind == "p300"

    @property
    def n_codes(self) -> int:
        """Flash codes of the speller matrix: its columns, then its rows."""
        return len(self.matrix[0]) + len(self.matrix)


#: Preprocessing each paradigm starts from, for the keys a config file does not set itself:
#: motor imagery keeps the file's defaults (mu and beta); P300 wants the slow ERP waves up to
#: 20 Hz, which 60 Hz windows hold; SSVEP wants the stimulation frequencies and their second
#: harmonics (13-21 Hz -> 26-42 Hz) below 45 Hz.
PARADIGM_DEFAULTS: dict[str, dict[str, Any]] = {
    "mi": {},
    "p300": {
        "filters": {"bandpass": [0.5, 20.0], "notch": None},
        "model_rate": 60.0,
        "windows": {"length": 0.8, "hop": 0.8},
    },
    "ssvep": {
        "filters": {"bandpass": [5.0, 45.0]},
        "model_rate": 128.0,
        "windows": {"length": 1.0, "hop": 0.25},
    },
}


class AppConfig(_Section):
    stream: StreamConfig = StreamConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    channels: ChannelsConfig = ChannelsConfig()
    filters: FiltersConfig = FiltersConfig()
    model_rate: PositiveHz | None = 160.0
    windows: WindowsConfig = WindowsConfig()
    ring: RingConfig = RingConfig()
    health: HealthConfig = HealthConfig()
    scheduling: SchedulingConfig = SchedulingConfig()
    model: ModelConfig = ModelConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    gui: GuiConfig = GuiConfig()
    outlets: OutletsConfig = OutletsConfig()
    paradigm: ParadigmConfig = ParadigmConfig()

    @model_validator(mode="after")
    def _below_model_nyquist(self) -> AppConfig:
        if self.model_rate is None:
            return self  # checked against the stream rate once it is known
        nyquist = self.model_rate / 2
        if self.filters.bandpass is not None:
            for edge in self.filters.bandpass:
                if edge is not None and edge >= nyquist:
                    raise ValueError(
                        f"filters.bandpass edge {edge} Hz is at or above the Nyquist frequency "
                        f"{nyquist} Hz of model_rate {self.model_rate} Hz; lower the edge or "
                        "raise model_rate"
                    )
        if self.filters.notch is not None and self.filters.notch >= nyquist:
            raise ValueError(
                f"filters.notch {self.filters.notch} Hz is at or above the Nyquist frequency "
                f"{nyquist} Hz of model_rate {self.model_rate} Hz; the anti-aliasing filter "
                "already removes it, so set filters.notch: null"
            )
        return self

    @model_validator(mode="after")
    def _window_fits_the_ring(self) -> AppConfig:
        if self.ring.capacity < self.windows.length:
            raise ValueError(
                f"ring.capacity {self.ring.capacity:g} s is shorter than windows.length "
                f"{self.windows.length:g} s, so no window would fit; use ring.capacity >= "
                "windows.length (the default is 30 s)"
            )
        return self


def with_paradigm(config: AppConfig, kind: str, keep_set_keys: bool = False) -> AppConfig:
    """``config`` for paradigm ``kind``: its ``paradigm.kind`` set, and the paradigm's
    preprocessing (:data:`PARADIGM_DEFAULTS`) in place of the config's. ``keep_set_keys``: a
    key the config file set itself wins over the paradigm's (for a file written for this
    paradigm; the shipped config.yaml sets every key, for motor imagery)."""
    if kind not in PARADIGM_CHOICES:
        raise ConfigError(f"unknown paradigm {kind!r}; choose one of {', '.join(PARADIGM_CHOICES)}")
    data = config.model_dump()
    for key, value in PARADIGM_DEFAULTS[kind].items():
        if isinstance(value, dict):
            section = getattr(config, key)
            data[key].update(
                {
                    k: v
                    for k, v in value.items()
                    if not (keep_set_keys and k in section.model_fields_set)
                }
            )
        elif not (keep_set_keys and key in config.model_fields_set):
            data[key] = value
    data["paradigm"]["kind"] = kind
    return parse_config(data, f"the {kind} paradigm's defaults")


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model class in a field annotation (``Section`` or ``Section | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _field_names(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The allowed keys of the section at ``path`` of ``model`` (for unknown-key messages)."""
    for part in path:
        field = model.model_fields.get(str(part))
        section = _section_model(getattr(field, "annotation", None))
        if section is None:
            return []
        model = section
    return sorted(model.model_fields)


def _shown(value: Any, limit: int = 80) -> str:
    """`` (got <repr>)`` for an offending value, shortened; empty for whole sections."""
    if isinstance(value, dict):
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= limit else text[: limit - 3] + '...'})"


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One message for every problem in ``error``, the same for every file the app reads.

    ``source`` names what was read (a file path). Each problem reads ``field.path: what is
    wrong (got value)``; unknown keys list the keys allowed there, looked up in ``model`` (the
    validated model). One problem reads ``source: problem``; several, a count and one per line.
    """
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        field_path = ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(_field_names(model, loc[:-1]))
            lines.append(f"{field_path}: unknown key; allowed keys here: {allowed}")
            continue
        message = item["msg"].removeprefix("Value error, ")
        problem = f"{message}{_shown(item.get('input'))}"
        lines.append(f"{field_path}: {problem}" if field_path else problem)
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return f"{source}: {len(lines)} problems\n  - " + "\n  - ".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = "<dict>") -> AppConfig:
    """Validate an already-parsed mapping; ``source`` names it in error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections, got {type(data).__name__}"
        )
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, f"invalid configuration in {source}", AppConfig)
        ) from None


def load_config(path: str | Path | None = None) -> AppConfig:
    """Load and validate a YAML config file (safe loading, duplicate keys refused); None loads
    the default file."""
    config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if path is None and not config_path.exists():
        return AppConfig()
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {config_path} does not exist; pass an existing file with --config"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {config_path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects
    except _DuplicateKey as exc:
        raise ConfigError(f"invalid configuration in {config_path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_path} is not valid YAML: {exc}") from None
    return parse_config(data, str(config_path))


class _DuplicateKey(yaml.YAMLError):
    """A mapping of the YAML file gives one key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (YAML itself keeps the
    last one silently, so a second ``notch:`` would quietly win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); YAML would keep "
                    "the last one silently, so delete the one you do not mean"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)
