"""``metadata.json`` of a checkpoint folder: what a model needs to be used, validated on reading.

:class:`CheckpointMetadata` is a frozen pydantic model; the JSON written by
:meth:`CheckpointMetadata.to_json` is the on-disk contract (format :data:`FORMAT_VERSION`).
Every problem is reported as a :class:`CheckpointError` that names the file, the field path and
what is allowed, in the same form as config errors (:func:`bci_app.config.format_validation_error`).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import safetensors
import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

import bci_app
from bci_app.config import (
    DspConfig,
    ParadigmConfig,
    PositiveHz,
    PositiveSeconds,
    format_validation_error,
)
from bci_app.errors import UserError
from bci_app.io.labels import label_key
from bci_app.nn.classifier import ClassifierConfig

__all__ = [
    "DECODER_KINDS",
    "FORMAT_VERSION",
    "AlignmentSpec",
    "CheckpointError",
    "CheckpointMetadata",
    "DecoderSpec",
    "current_versions",
    "json_default",
]

#: 2: ``decoder`` (any kind) replaces ``classifier`` (network only); with its
#: band and alignment, ``weights_sha256``. Format 1 files are read as a network decoder.
#: 3: ``onnx_sha256``: a network's ONNX graph (``model.onnx``) beside the weights.
#: 4: ``paradigm`` (mi, p300, ssvep) and the ERP / SSVEP decoder kinds; older files are MI.
FORMAT_VERSION = 4
DECODER_KINDS = (
    "network",
    "riemann",
    "mdm",
    "csp-lda",
    "xdawn-riemann",
    "lda",
    "fbcca",
    "fb-riemann",
    "ensemble",
)


class CheckpointError(UserError, ValueError):
    """A checkpoint folder is missing, corrupt, unsafe or does not fit the stream."""


def current_versions() -> dict[str, str]:
    """Versions of python, torch, numpy, safetensors and bci_app in this environment."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "bci_app": bci_app.__version__,
    }


def json_default(value: Any) -> Any:
    """Make numpy / torch scalars and arrays and paths JSON-serialisable."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _no_duplicates(values: list[str]) -> list[str]:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"has duplicates: {duplicates}")
    return values


def _no_duplicate_labels(labels: list[str]) -> list[str]:
    """Electrode labels must differ after normalisation (``'Fc5.'`` is ``'FC5'``)."""
    keys = [label_key(label) for label in labels]
    duplicates = sorted(
        {label for label, key in zip(labels, keys, strict=True) if keys.count(key) > 1}
    )
    if duplicates:
        raise ValueError(f"has duplicates (case and trailing dots ignored): {duplicates}")
    return labels


_Name = Annotated[str, Field(min_length=1)]


def _nested_errors(exc: ValidationError, prefix: str) -> list[str]:
    """``prefix.field: problem`` for each error of a nested model validated by hand."""
    problems = []
    for error in exc.errors():
        where = ".".join([prefix, *map(str, error["loc"])])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return problems


class AlignmentSpec(BaseModel):
    """Euclidean alignment of the windows before the decoder (tensors ``alignment.*``);
    ``memory_windows`` > 0: the reference follows the session over about that many windows."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    method: Literal["euclidean"] = "euclidean"
    memory_windows: Annotated[int, Field(ge=0)] = 0


class DecoderSpec(BaseModel):
    """What a checkpoint's decoder is: ``kind``, the ``params`` to rebuild it (a network's
    architecture in ``params.classifier``, an ensemble's members in ``params.members``, each
    ``{kind, params, ...}``) and ``weights_meaning``, what its electrode weights are.
    ``band_hz``: the zero-phase band-pass (Hz) the decoder applies inside each window before
    anything else; ``alignment``: Euclidean alignment of its windows (tensors ``alignment.*``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kind: Literal[DECODER_KINDS]  # runtime Literal of the tuple's values
    params: dict[str, Any] = Field(default_factory=dict)
    weights_meaning: str = ""
    band_hz: Annotated[list[PositiveHz], Field(min_length=2, max_length=2)] | None = None
    alignment: AlignmentSpec | None = None

    @model_validator(mode="after")
    def _params_fit_kind(self) -> DecoderSpec:
        self.networks()  # validates every network architecture
        if self.band_hz is not None and not self.band_hz[0] < self.band_hz[1]:
            raise ValueError(f"band_hz {list(self.band_hz)} must be [low, high] with low < high")
        if self.kind == "ensemble" and (self.band_hz or self.alignment):
            raise ValueError("an ensemble has no band_hz or alignment of its own (its members do)")
        return self

    def members(self) -> list[DecoderSpec]:
        """The ensemble's members (validated), or ``[self]`` for a single decoder. A member may
        itself be an ensemble: ``auto`` can pair a network averaged over seeds with another
        decoder."""
        if self.kind != "ensemble":
            return [self]
        members = self.params.get("members")
        if not isinstance(members, list) or len(members) < 2:
            raise ValueError("an ensemble's params.members must list at least 2 decoders")
        return [DecoderSpec.model_validate(m) for m in members]

    def leaves(self) -> list[DecoderSpec]:
        """Every single decoder in it, nested ensembles opened (``[self]`` for one decoder)."""
        if self.kind != "ensemble":
            return [self]
        return [leaf for member in self.members() for leaf in member.leaves()]

    def networks(self) -> list[ClassifierConfig]:
        """The architectures of the network decoders in it (validated)."""
        configs = []
        for member in self.leaves():
            if member.kind == "network":
                architecture = member.params.get("classifier")
                if not isinstance(architecture, Mapping):
                    raise ValueError("a network decoder needs params.classifier (its architecture)")
                try:
                    configs.append(ClassifierConfig.model_validate(dict(architecture)))
                except ValidationError as exc:
                    raise ValueError("; ".join(_nested_errors(exc, "params.classifier"))) from None
        return configs


class CheckpointMetadata(BaseModel):
    """Everything needed to use a checkpoint: classes, channels, rates, dsp, architecture.

    ``channel_labels`` are in model input order; ``model_rate_hz`` is the sampling rate of the
    model input (Hz); ``window_s`` / ``hop_s`` the window length and hop (s); ``dsp`` the
    preprocessing the model was trained with (every key stated); ``classifier`` the
    architecture, which must agree with the classes, channels, rate and window. ``training``,
    ``metrics`` and ``versions`` are free-form JSON objects for the model card.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    format_version: Annotated[int, Field(ge=1)] = FORMAT_VERSION
    classes: Annotated[list[_Name], Field(min_length=2), AfterValidator(_no_duplicates)]
    channel_labels: Annotated[
        list[_Name], Field(min_length=1), AfterValidator(_no_duplicate_labels)
    ]
    model_rate_hz: PositiveHz
    window_s: PositiveSeconds
    hop_s: PositiveSeconds
    dsp: DspConfig
    decoder: DecoderSpec
    # What a trial is and how decisions are made; checkpoints from before paradigms are MI.
    paradigm: ParadigmConfig = ParadigmConfig()
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    onnx_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, Any] = Field(default_factory=current_versions)

    @field_validator("format_version")
    @classmethod
    def _readable_format(cls, version: int) -> int:
        if version > FORMAT_VERSION:
            raise ValueError(
                f"the checkpoint was written by a newer bci-app (this one reads format "
                f"{FORMAT_VERSION}); upgrade bci-app"
            )
        return version

    @model_validator(mode="before")
    @classmethod
    def _network_from_classifier(cls, data: Any) -> Any:
        """Format 1 (and ``classifier=`` as shorthand): a network decoder of that architecture."""
        if isinstance(data, Mapping) and "classifier" in data:
            data = dict(data)
            classifier = data.pop("classifier")
            if "decoder" in data:
                raise ValueError("give either decoder or classifier (format 1), not both")
            if isinstance(classifier, ClassifierConfig):
                classifier = classifier.to_dict()
            data["decoder"] = {"kind": "network", "params": {"classifier": classifier}}
        return data

    @field_validator("dsp", mode="before")
    @classmethod
    def _every_dsp_key(cls, dsp: Any) -> Any:
        """A checkpoint states all of its preprocessing: no key falls back to a default.
        Checkpoints from before ``resampler_phase`` existed were trained through the
        linear-phase resampler, so that is what they lack."""
        if isinstance(dsp, Mapping):
            if "resampler_phase" not in dsp:
                dsp = {**dsp, "resampler_phase": "linear"}
            missing = [key for key in DspConfig.model_fields if key not in dsp]
            if missing:
                raise ValueError(
                    f"lacks {', '.join(missing)}; a checkpoint states every dsp key "
                    f"({', '.join(DspConfig.model_fields)}) it was trained with"
                )
        return dsp

    @model_validator(mode="after")
    def _architecture_fits(self) -> CheckpointMetadata:
        problems: list[str] = []
        for config in self.decoder.networks():
            problems += self._network_problems(config)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _network_problems(self, config: ClassifierConfig) -> list[str]:
        problems = [
            f"classifier.{name} is {got} but {what} is {expected}"
            for name, got, expected, what in (
                ("n_classes", config.n_classes, len(self.classes), "the number of classes"),
                (
                    "n_electrodes",
                    config.n_electrodes,
                    len(self.channel_labels),
                    "the number of channel_labels",
                ),
                ("n_samples", config.n_samples, self.window_samples, "window_s * model_rate_hz"),
            )
            if got != expected
        ]
        if not math.isclose(config.rate_hz, self.model_rate_hz, rel_tol=1e-9):
            problems.append(
                f"classifier.rate_hz is {config.rate_hz} Hz but model_rate_hz is "
                f"{self.model_rate_hz} Hz"
            )
        return problems

    @property
    def classifier(self) -> ClassifierConfig | None:
        """The network's architecture when the decoder is a network (first network of an
        ensemble), else None."""
        networks = self.decoder.networks()
        return networks[0] if networks else None

    @property
    def window_samples(self) -> int:
        """Window length in model-rate samples."""
        return round(self.window_s * self.model_rate_hz)

    def to_dict(self) -> dict[str, Any]:
        """A deep-copied plain dict of all fields."""
        return self.model_dump()

    def to_json(self) -> str:
        """Validated, indented JSON text (numpy scalars/arrays are converted).

        Validated again: the lists and dicts inside a frozen model can still be edited.
        """
        type(self).from_dict(self.to_dict())
        try:
            return json.dumps(self.to_dict(), indent=2, default=json_default) + "\n"
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"metadata cannot be written as JSON: {exc}") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "metadata") -> CheckpointMetadata:
        """Validate a parsed mapping; ``source`` (the file) names it in the CheckpointError."""
        if not isinstance(data, Mapping):
            raise CheckpointError(
                f"{source}: metadata must be a JSON object at the top level, "
                f"got {type(data).__name__}"
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise CheckpointError(format_validation_error(exc, source, cls)) from None

    @classmethod
    def from_json(cls, text: str, source: str = "metadata") -> CheckpointMetadata:
        """Parse and validate JSON text; ``source`` (the file) names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(
                f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        return cls.from_dict(data, source)
