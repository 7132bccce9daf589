"""Checkpoint folders: ``model.safetensors`` + ``metadata.json`` + ``MODEL_CARD.md``.

The weights are a plain safetensors state dict: loading parses a JSON header and raw tensor
bytes and never executes code. Nothing here unpickles (no ``torch.load``); a pickle renamed to
``model.safetensors`` is refused with a :class:`CheckpointError`. The metadata model lives in
:mod:`bci_app.nn.metadata` and is re-exported here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from bci_app.config import AppConfig, WindowsConfig
from bci_app.dsp.stage import build_preprocessor
from bci_app.io.labels import label_key
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier, upgrade_state
from bci_app.nn.export import ONNX_FILE, export_onnx
from bci_app.nn.metadata import (
    FORMAT_VERSION,
    CheckpointError,
    CheckpointMetadata,
    current_versions,
    json_default,
)

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILES",
    "DEFAULT_MODEL_DIR",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "MODEL_CARD_FILE",
    "ONNX_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "CheckpointMetadata",
    "apply_checkpoint",
    "check_stream_compatibility",
    "check_tensors",
    "network_state_problems",
    "current_versions",
    "load_checkpoint",
    "model_dir",
    "read_checkpoint",
    "read_metadata",
    "read_onnx",
    "render_model_card",
    "resolve_device",
    "save_checkpoint",
    "write_checkpoint",
]

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
CHECKPOINT_FILES: tuple[str, ...] = (WEIGHTS_FILE, METADATA_FILE, MODEL_CARD_FILE)
#: The shipped default model (the demo's): trained on the built-in simulator.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "sim-motor-imagery"

_CONTENTS = (
    f"a checkpoint folder must contain {WEIGHTS_FILE} (weights), {METADATA_FILE} and "
    f"{MODEL_CARD_FILE}, as written by save_checkpoint / `bci-app train`"
)


def model_dir(config: AppConfig) -> Path:
    """The configured checkpoint folder, or the shipped default model."""
    return Path(config.model.path) if config.model.path else DEFAULT_MODEL_DIR


def apply_checkpoint(config: AppConfig, metadata: CheckpointMetadata) -> AppConfig:
    """``config`` with the preprocessing, model rate and window length the model was trained
    with (the model is only valid on those); the hop stays the configured one."""
    return metadata.dsp.apply_to(config).model_copy(
        update={
            "model_rate": metadata.model_rate_hz,
            "paradigm": metadata.paradigm,
            "windows": WindowsConfig(
                length=metadata.window_s, hop=min(config.windows.hop, metadata.window_s)
            ),
        }
    )


def _write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a hidden temp file next to ``path`` (flushed to disk); return it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def write_checkpoint(
    directory: str | Path,
    tensors: Mapping[str, torch.Tensor],
    metadata: CheckpointMetadata,
    model_card: str,
    onnx: bytes | None = None,
) -> Path:
    """Write a checkpoint folder from named tensors (any decoder kind): ``model.safetensors``,
    ``metadata.json`` with the weights' SHA-256, and the card; with ``onnx`` (a network's
    graph, :mod:`bci_app.nn.export`) also ``model.onnx`` and its SHA-256. Created if needed;
    existing checkpoint files are replaced (a ``model.onnx`` of an earlier checkpoint is
    removed). All are written to temp files first, then renamed into place (metadata last).
    Returns the folder path."""
    directory = Path(directory)
    weights = safetensors.torch.save(
        {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
        metadata={
            "format": "pt",
            "bci_app_format_version": str(FORMAT_VERSION),
            "decoder_kind": metadata.decoder.kind,
        },
    )
    metadata = metadata.model_copy(
        update={
            "format_version": FORMAT_VERSION,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "onnx_sha256": None if onnx is None else hashlib.sha256(onnx).hexdigest(),
        }
    )
    metadata_json = metadata.to_json()  # validates
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"cannot save a checkpoint to {directory}: it is not a folder")
    directory.mkdir(parents=True, exist_ok=True)
    contents = (
        (WEIGHTS_FILE, weights),
        *(() if onnx is None else ((ONNX_FILE, onnx),)),
        (MODEL_CARD_FILE, model_card.encode("utf-8")),
        (METADATA_FILE, metadata_json.encode("utf-8")),
    )
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in contents:
            target = directory / name
            temps.append((_write_temp(target, data), target))
        for tmp, target in temps:
            os.replace(tmp, target)
        if onnx is None:
            (directory / ONNX_FILE).unlink(missing_ok=True)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return directory


def save_checkpoint(
    directory: str | Path,
    model: EEGClassifier,
    metadata: CheckpointMetadata,
    model_card: str,
) -> Path:
    """Write the checkpoint folder of a network decoder (see :func:`write_checkpoint`)."""
    if not isinstance(model, EEGClassifier):
        raise TypeError(f"model must be an EEGClassifier, got {type(model).__name__}")
    if metadata.decoder.kind != "network" or metadata.classifier != model.config:
        raise CheckpointError(
            "metadata 'decoder' does not describe the network being saved: metadata "
            f"{metadata.decoder.kind} {metadata.classifier} vs model {model.config}"
        )
    return write_checkpoint(
        directory, model.state_dict(), metadata, model_card, onnx=export_onnx(model)
    )


def _check_folder(directory: Path) -> None:
    if not directory.exists():
        raise CheckpointError(f"checkpoint folder {directory} does not exist; {_CONTENTS}")
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} is not a folder; {_CONTENTS}")
    missing = [name for name in CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise CheckpointError(
            f"checkpoint folder {directory} lacks {', '.join(missing)}; {_CONTENTS}"
        )


def read_metadata(directory: str | Path) -> CheckpointMetadata:
    """Read and validate ``metadata.json`` of a checkpoint folder (the weights are not read)."""
    directory = Path(directory)
    _check_folder(directory)
    path = directory / METADATA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    return CheckpointMetadata.from_json(text, source=str(path))


def _looks_like_pickle(data: bytes) -> bool:
    """torch.save zip archives start with 'PK'; pickles with PROTO (0x80) or a protocol-0 op."""
    return data.startswith(b"PK\x03\x04") or data[:1] in (b"\x80", b"(", b"c", b"}", b"]")


def _read_weights(path: Path, metadata: CheckpointMetadata) -> dict[str, torch.Tensor]:
    """Parse a safetensors file into CPU tensors; anything else is a CheckpointError, as are
    bytes that differ from the SHA-256 in the metadata and weights of another decoder kind.

    The bytes are only ever handed to the safetensors parser (never to pickle/torch.load).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    header_len = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
    if len(data) < 8 or header_len == 0 or 8 + header_len > len(data) or data[8:9] != b"{":
        problem = (
            f"only {len(data)} bytes"
            if len(data) < 8
            else f"header length {header_len} is invalid for a {len(data)}-byte file"
        )
        reason = f"{problem} (truncated or not safetensors)"
    else:
        try:
            tensors = safetensors.torch.load(data)
            header = json.loads(data[8 : 8 + header_len]).get("__metadata__") or {}
        except Exception as exc:  # SafetensorError and friends: any parse failure is corruption
            reason = str(exc)
        else:
            digest = hashlib.sha256(data).hexdigest()
            if metadata.weights_sha256 is not None and digest != metadata.weights_sha256:
                raise CheckpointError(
                    f"{path} has SHA-256 {digest[:12]}… but {METADATA_FILE} says "
                    f"{metadata.weights_sha256[:12]}…: the weights were changed or damaged after "
                    "saving; copy the checkpoint folder again or retrain"
                )
            kind = header.get("decoder_kind", "network")
            if kind != metadata.decoder.kind:
                raise CheckpointError(
                    f"{path} holds the weights of a {kind} decoder but {METADATA_FILE} says "
                    f"{metadata.decoder.kind}; the two files come from different checkpoints"
                )
            return tensors
    if _looks_like_pickle(data):
        reason += (
            "; it looks like a pickle / torch.save file, which is refused because unpickling can "
            "execute arbitrary code: re-save the model with save_checkpoint"
        )
    raise CheckpointError(f"{path} is not a valid safetensors file: {reason}")


def read_onnx(directory: str | Path, metadata: CheckpointMetadata) -> bytes | None:
    """The network's ONNX graph saved beside its weights, checked against the SHA-256 in the
    metadata; None when the checkpoint has none (saved before format 3, or not a network) or
    the file is missing (logged: the worker then exports the graph itself)."""
    if metadata.onnx_sha256 is None:
        return None
    path = Path(directory) / ONNX_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        log.warning("%s is missing (the metadata names it); the graph is exported at load", path)
        return None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != metadata.onnx_sha256:
        raise CheckpointError(
            f"{path} has SHA-256 {digest[:12]}… but {METADATA_FILE} says "
            f"{metadata.onnx_sha256[:12]}…: the graph was changed or damaged after saving; "
            f"copy the checkpoint folder again, or delete {ONNX_FILE} to export it at load"
        )
    return data


def read_checkpoint(directory: str | Path) -> tuple[CheckpointMetadata, dict[str, torch.Tensor]]:
    """The validated metadata and the CPU tensors of a checkpoint folder of any decoder kind."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    return metadata, _read_weights(directory / WEIGHTS_FILE, metadata)


def check_tensors(
    tensors: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    path: Path,
    what: str,
) -> None:
    """Keys, shapes, dtype families and values of saved ``tensors`` against ``expected``
    (name -> a tensor of the right shape and dtype); ``what`` names the decoder in the error."""
    problems: list[str] = []
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:8])}")
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected[:8])}")
    for key in sorted(set(expected) & set(tensors)):
        want, got = expected[key], tensors[key]
        if tuple(want.shape) != tuple(got.shape):
            problems.append(f"{key} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        elif want.is_floating_point() != got.is_floating_point():
            problems.append(f"{key} has dtype {got.dtype}, expected {want.dtype}")
        elif got.is_floating_point() and not bool(torch.isfinite(got).all()):
            problems.append(f"{key} contains NaN or infinite values")
    if problems:
        raise CheckpointError(
            f"{path} does not match the {what} in {METADATA_FILE}: " + "; ".join(problems)
        )


def network_state_problems(
    tensors: Mapping[str, torch.Tensor], config: ClassifierConfig
) -> list[str]:
    """What in a network's saved state disagrees with its architecture beyond shapes: the
    input scale, and an electrode order that is not a permutation."""
    problems = []
    scale = tensors.get("input_scale_uv")
    if scale is not None and not math.isclose(float(scale), config.input_scale_uv, rel_tol=1e-6):
        problems.append(
            f"input_scale_uv is {float(scale)} but the architecture in {METADATA_FILE} says "
            f"{config.input_scale_uv}"
        )
    order = tensors.get("attention.order")
    if order is not None and sorted(order.tolist()) != list(range(config.n_electrodes)):
        problems.append("attention.order is not a permutation of the electrodes")
    return problems


def _check_state(
    model: EEGClassifier, tensors: dict[str, torch.Tensor], path: Path, config: ClassifierConfig
) -> None:
    """The saved tensors against the built architecture, plus its scale and electrode order."""
    check_tensors(tensors, model.state_dict(), path, f"architecture ({config})")
    problems = network_state_problems(tensors, config)
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"auto"`` -> CUDA if available else CPU; otherwise ``torch.device(device)``."""
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N' ({exc})"
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available; use 'cpu'")
    return resolved


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[EEGClassifier, CheckpointMetadata]:
    """Load a checkpoint folder; returns the model (eval mode, on ``device``) and metadata.

    Never unpickles: the weights are parsed with safetensors only. ``device`` may also be
    ``"auto"``. Raises :class:`CheckpointError` for a missing folder/file, corrupt metadata,
    invalid safetensors, weights that do not fit the architecture in the metadata, or a decoder
    that is more than the network (another kind, or a network with its input alignment).
    """
    directory = Path(directory)
    metadata, tensors = read_checkpoint(directory)
    config = metadata.classifier
    if metadata.decoder.kind != "network" or config is None:
        raise CheckpointError(
            f"{directory} holds a {metadata.decoder.kind} decoder, not a network; load it with "
            "bci_app.decoders.load_decoder"
        )
    if metadata.decoder.alignment is not None:
        raise CheckpointError(
            f"{directory} holds a network that expects re-centred windows (Euclidean "
            "alignment, saved beside its weights); load it with bci_app.decoders.load_decoder, "
            "which applies the alignment"
        )
    target = resolve_device(device)
    path = directory / WEIGHTS_FILE
    model = EEGClassifier(config, channel_labels=metadata.channel_labels)
    tensors = upgrade_state(tensors, config)
    _check_state(model, tensors, path, config)
    model.load_state_dict(tensors, strict=True)
    return model.to(target).eval(), metadata


def check_stream_compatibility(
    metadata: CheckpointMetadata, labels: Sequence[str], rate_hz: float
) -> list[int]:
    """Indices into the stream's ``labels`` that give the model's channel order.

    Labels match case-insensitively with EDF-style trailing dots stripped (``'Fc5.'`` ==
    ``'FC5'``). ``rate_hz`` is the app's model rate (Hz), which must equal the checkpoint's
    ``model_rate_hz``. Raises :class:`CheckpointError` listing every problem found.
    """
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label_key(label), []).append(i)
    problems: list[str] = []
    model_labels = metadata.channel_labels
    missing = [lab for lab in model_labels if label_key(lab) not in by_label]
    if missing:
        problems.append(
            f"the stream lacks {len(missing)} of the model's {len(model_labels)} channels: "
            f"{', '.join(missing)}. The stream has {len(labels)} channels: "
            f"{', '.join(map(str, labels))}. If channels.pick in config.yaml drops them, add them "
            f"(e.g. channels.pick: [{', '.join(model_labels)}]); otherwise use a stream with "
            "these electrodes or a checkpoint trained on this montage"
        )
    ambiguous = [lab for lab in model_labels if len(by_label.get(label_key(lab), ())) > 1]
    if ambiguous:
        problems.append(
            f"the stream has several channels named {', '.join(ambiguous)}; set channels.pick "
            "in config.yaml to choose one of each"
        )
    if not (rate_hz > 0 and math.isfinite(rate_hz)):
        problems.append(f"the model rate must be a number > 0 Hz, got {rate_hz!r}")
    elif not math.isclose(float(rate_hz), metadata.model_rate_hz, rel_tol=1e-6):
        problems.append(
            f"the checkpoint was trained at {metadata.model_rate_hz:g} Hz but the configured "
            f"model rate is {float(rate_hz):g} Hz; set model_rate: {metadata.model_rate_hz:g} "
            "in config.yaml"
        )
    if problems:
        raise CheckpointError(
            "the checkpoint does not fit the stream:\n  - " + "\n  - ".join(problems)
        )
    return [by_label[label_key(lab)][0] for lab in model_labels]


def _cell(value: Any) -> str:
    """A Markdown table cell: numbers compact, containers as JSON, pipes escaped."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=json_default)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def _table(rows: list[tuple[str, Any]], header: tuple[str, str]) -> list[str]:
    if not rows:
        return ["(none)"]
    lines = [f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    return lines


_DECODER_NAMES = {
    "network": "a network with electrode attention in front, then EEGNet's convolutions "
    "(Lawhern et al. 2018) or the tangent space of the gated window's covariance",
    "riemann": "OAS covariances, tangent space at their Riemannian mean, logistic regression "
    "(pyRiemann, scikit-learn)",
    "mdm": "OAS covariances, minimum Riemannian distance to the class means (pyRiemann MDM)",
    "csp-lda": "common spatial patterns (mne.decoding.CSP, OAS) + LDA (scikit-learn)",
    "xdawn-riemann": "xDAWN prototypes and filtered epochs, OAS covariances, tangent space, "
    "logistic regression (pyRiemann, scikit-learn)",
    "lda": "epoch samples in 50 ms bins, LDA with Ledoit-Wolf shrinkage (scikit-learn)",
    "fbcca": "filter-bank canonical correlation with sine/cosine references at each "
    "stimulation frequency and its harmonics (Chen et al. 2015)",
    "fb-riemann": "OAS covariances in a band around each stimulation frequency, tangent space, "
    "logistic regression (pyRiemann, scikit-learn)",
    "ensemble": "the mean class probability of its members",
}


def _decoder_section(metadata: CheckpointMetadata) -> list[str]:
    decoder = metadata.decoder
    lines = ["## Decoder", "", f"`{decoder.kind}`: {_DECODER_NAMES[decoder.kind]}."]
    members = decoder.members() if decoder.kind == "ensemble" else []
    for kind, count in Counter(m.kind for m in members if m.kind != "ensemble").items():
        times = f" x{count}" if count > 1 else ""
        lines.append(f"- member `{kind}`{times}: {_DECODER_NAMES[kind]}")
    for member in (m for m in members if m.kind == "ensemble"):  # e.g. a network over seeds
        leaves = Counter(leaf.kind for leaf in member.leaves())
        inside = ", ".join(f"`{kind}` x{count}" for kind, count in leaves.items())
        lines.append(f"- member `ensemble` of {inside}: {_DECODER_NAMES['ensemble']}")
    for spec in decoder.leaves():
        steps = []
        if spec.band_hz is not None:
            steps.append(f"band-pass {spec.band_hz[0]:g}-{spec.band_hz[1]:g} Hz inside each window")
        if spec.alignment is not None:
            memory = spec.alignment.memory_windows
            steps.append(
                "Euclidean alignment (He & Wu 2019) to the calibration's mean covariance"
                + (f", following the session over about {memory} windows" if memory else "")
            )
        line = f"- `{spec.kind}` input: " + "; ".join(steps)
        if steps and line not in lines:  # the members of a seed ensemble share their input
            lines.append(line)
    lines += ["", f"Electrode weights: {decoder.weights_meaning or 'attention weights'}.", ""]
    for config in decoder.networks()[:1]:
        n_params = sum(p.numel() for p in EEGClassifier(config).parameters())
        body = (
            "OAS covariance of the gated window, matrix logarithm, linear head (runs in torch: "
            "ONNX has no eigendecomposition)"
            if config.body == "tangent"
            else f"EEGNet convolutions, temporal kernel {config.temporal_kernel} samples"
        )
        lines += [
            f"Network: `{config.attention}` electrode attention, then {body}; {n_params} "
            "parameters.",
            "",
            *_table(list(config.to_dict().items()), ("setting", "value")),
            "",
        ]
    if decoder.kind != "network":
        lines += ["Parameters:", "", *_table(_flatten(decoder.params), ("setting", "value")), ""]
    return lines


def _delays(metadata: CheckpointMetadata) -> str:
    """The dsp chain's group delays and settling time at the model rate, as text."""
    config = apply_checkpoint(AppConfig(), metadata)
    return build_preprocessor(config, metadata.model_rate_hz, 1).delays().describe()


_PARADIGM_TEXT = {
    "mi": lambda m: (
        "Motor imagery: after each cue, sliding windows; a trial's decision is the "
        "mean class probability of its windows."
    ),
    "p300": lambda m: (
        f"P300 speller: one {m.paradigm.epoch[0]:g}-{m.paradigm.epoch[1]:g} s epoch "
        "after each flash, scored target vs non-target; per character the log-odds of each flash "
        "code are summed over repetitions and the character is the best row x best column of the "
        f"{len(m.paradigm.matrix)}x{len(m.paradigm.matrix[0])} matrix; dynamic stopping at "
        f"posterior {m.paradigm.stop_posterior:g}."
    ),
    "ssvep": lambda m: (
        "SSVEP: sliding windows over each stimulation period; classes "
        "`<number>Hz` are flicker frequencies, `rest` the no-control state."
    ),
}


def render_model_card(metadata: CheckpointMetadata, extra: str = "") -> str:
    """Markdown model card: classes, channels, rates, dsp, decoder, data, metrics."""
    dsp = metadata.dsp
    band = dsp.bandpass
    band_text = "off" if band is None else f"{band[0]} - {band[1]} Hz"
    notch = "off" if dsp.notch is None else f"{dsp.notch} Hz (Q {dsp.notch_quality})"
    lines = ["# EEG classifier checkpoint", ""]
    if extra.strip():
        lines += [extra.strip(), ""]
    lines += [
        "## Paradigm",
        "",
        _PARADIGM_TEXT[metadata.paradigm.kind](metadata),
        "",
        "## Classes",
        "",
        *[f"{i}. `{name}`" for i, name in enumerate(metadata.classes)],
        "",
        "## Input",
        "",
        f"- Channels ({len(metadata.channel_labels)}, in model input order): "
        + ", ".join(metadata.channel_labels),
        f"- Model sampling rate: {metadata.model_rate_hz:g} Hz",
        f"- Window: {metadata.window_s:g} s ({metadata.window_samples} samples), "
        f"hop {metadata.hop_s:g} s",
        "- Units: microvolts, float32, shape (batch, channels, samples)",
        "",
        "## Preprocessing (must match at inference)",
        "",
        f"- Band-pass: {band_text}, order {dsp.order}",
        f"- Notch: {notch}",
        f"- Reference: {dsp.reference}",
        f"- Resampler anti-aliasing FIR: {dsp.resampler_phase} phase",
        f"- Fixed delay at {metadata.model_rate_hz:g} Hz: {_delays(metadata)}"
        " (a stream at another rate adds its resampler's delay; `bci-app run` prints the whole "
        "chain's)",
        "",
        *_decoder_section(metadata),
        "## Training data",
        "",
        *_table(_flatten(metadata.training), ("item", "value")),
        "",
        "## Metrics",
        "",
        *_table(_flatten(metadata.metrics), ("metric", "value")),
        "",
        "## Versions",
        "",
        *_table(list(metadata.versions.items()), ("package", "version")),
        "",
        "## Files",
        "",
        f"- `{WEIGHTS_FILE}`: the decoder's arrays in safetensors format (loading never executes "
        f"code), SHA-256 `{metadata.weights_sha256 or 'written at save'}`",
        *(
            [
                f"- `{ONNX_FILE}`: the network as an ONNX graph for ONNX Runtime on the CPU "
                "(exported at save from the weights, checked against them at load)"
            ]
            if metadata.decoder.kind == "network"
            else []
        ),
        f"- `{METADATA_FILE}`: the metadata above, read by the app (format version "
        f"{metadata.format_version})",
        f"- `{MODEL_CARD_FILE}`: this card",
        "",
    ]
    return "\n".join(lines)
