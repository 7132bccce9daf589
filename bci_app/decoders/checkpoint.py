"""Checkpoint folders of any decoder kind: arrays in safetensors, settings in metadata.json.

The metadata's ``decoder`` spec is derived from the decoder object when saving, so the two
cannot disagree. The decoder kind is also written in the safetensors header; a folder whose two
files disagree, or whose arrays lack the names or shapes that kind needs, is refused with a
:class:`~bci_app.nn.checkpoint.CheckpointError` before anything is rebuilt.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from bci_app.decoders.alignment import Alignment
from bci_app.decoders.band import BandFilter
from bci_app.decoders.base import Decoder, DecoderError, decoder_class, float_tensors
from bci_app.decoders.ensemble import EnsembleDecoder
from bci_app.decoders.network import NetworkDecoder
from bci_app.nn.checkpoint import (
    WEIGHTS_FILE,
    CheckpointError,
    CheckpointMetadata,
    check_tensors,
    read_checkpoint,
    read_onnx,
    write_checkpoint,
)
from bci_app.nn.export import export_onnx
from bci_app.nn.metadata import AlignmentSpec, DecoderSpec

__all__ = [
    "DEFAULT_MEMORY_WINDOWS",
    "decoder_arrays",
    "decoder_spec",
    "load_decoder",
    "save_decoder",
]

#: Windows an adapting reference follows (at a 0.25 s hop, about the last 15 s).
DEFAULT_MEMORY_WINDOWS = 60


def decoder_spec(decoder: Decoder) -> DecoderSpec:
    """The metadata ``decoder`` entry that describes ``decoder`` (members included)."""
    if isinstance(decoder, EnsembleDecoder):
        members = [decoder_spec(m).model_dump() for m in decoder.members]
        return DecoderSpec(
            kind=decoder.kind, params={"members": members}, weights_meaning=decoder.weights_meaning
        )
    alignment = decoder.alignment
    return DecoderSpec(
        kind=decoder.kind,
        params=decoder.params(),
        weights_meaning=decoder.weights_meaning,
        band_hz=None if decoder.band is None else list(decoder.band.band_hz),
        alignment=None
        if alignment is None
        else AlignmentSpec(memory_windows=alignment.memory_windows),
    )


def decoder_arrays(decoder: Decoder) -> dict[str, np.ndarray]:
    """Every array of ``decoder``: its own, its alignment's, its members' as ``member<i>.``."""
    if isinstance(decoder, EnsembleDecoder):
        return {
            f"member{i}.{name}": array
            for i, member in enumerate(decoder.members)
            for name, array in decoder_arrays(member).items()
        }
    arrays = dict(decoder.tensors())
    if decoder.alignment is not None:
        arrays.update(decoder.alignment.tensors())
    return arrays


def save_decoder(
    directory: str | Path, decoder: Decoder, metadata: CheckpointMetadata, model_card: str
) -> Path:
    """Write ``decoder`` with ``metadata`` (its ``decoder`` entry is replaced by the decoder's
    own spec) as a checkpoint folder; returns the folder."""
    metadata = CheckpointMetadata.from_dict(
        {**metadata.to_dict(), "decoder": decoder_spec(decoder).model_dump()}
    )
    tensors = {
        name: torch.as_tensor(np.asarray(array)).contiguous()  # 0-d stays 0-d
        for name, array in decoder_arrays(decoder).items()
    }
    onnx = export_onnx(decoder.model) if isinstance(decoder, NetworkDecoder) else None
    return write_checkpoint(directory, tensors, metadata, model_card, onnx=onnx)


def load_decoder(
    directory: str | Path, adapt: bool | None = None
) -> tuple[Decoder, CheckpointMetadata]:
    """The decoder of a checkpoint folder (networks on the CPU, eval mode) and its metadata.

    ``adapt``: None keeps the checkpoint's adaptation setting, False turns adaptation off,
    True turns it on for aligned decoders (the checkpoint's memory, else
    :data:`DEFAULT_MEMORY_WINDOWS`).
    """
    directory = Path(directory)
    metadata, tensors = read_checkpoint(directory)
    decoder = _build(metadata.decoder, tensors, metadata, directory / WEIGHTS_FILE, adapt)
    if isinstance(decoder, NetworkDecoder):
        decoder.onnx = read_onnx(directory, metadata)
    return decoder, metadata


def _numpy(tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in tensors.items()}


def _build(
    spec: DecoderSpec,
    tensors: Mapping[str, torch.Tensor],
    metadata: CheckpointMetadata,
    path: Path,
    adapt: bool | None,
) -> Decoder:
    if spec.kind == "ensemble":
        members = []
        for i, member in enumerate(spec.members()):
            prefix = f"member{i}."
            own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            members.append(_build(member, own, metadata, path, adapt))
        known = {f"member{i}." for i in range(len(members))}
        strays = [k for k in tensors if not any(k.startswith(p) for p in known)]
        if strays:
            raise CheckpointError(f"{path}: arrays of no ensemble member: {', '.join(strays[:8])}")
        return EnsembleDecoder(members)
    n_channels, n_classes = len(metadata.channel_labels), len(metadata.classes)
    own = {k: v for k, v in tensors.items() if not k.startswith("alignment.")}
    cls = decoder_class(spec.kind)
    own = cls.upgrade_tensors(own, spec.params)
    expected = cls.expected_tensors(spec.params, n_channels, n_classes)
    check_tensors(own, expected, path, f"{spec.kind} decoder")
    try:
        decoder = cls.rebuild(_numpy(own), spec.params, n_channels, n_classes)
    except DecoderError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if spec.band_hz is not None:
        try:
            decoder.band = BandFilter(*spec.band_hz, metadata.model_rate_hz)
        except ValueError as exc:
            raise CheckpointError(f"{path}: its band: {exc}; train it again") from None
    aligned = {k: v for k, v in tensors.items() if k.startswith("alignment.")}
    if spec.alignment is None:
        if aligned:
            raise CheckpointError(f"{path} has alignment arrays but its metadata no alignment")
        return decoder
    shapes = {"alignment.reference": (n_channels, n_channels), "alignment.scale": (1,)}
    check_tensors(aligned, float_tensors(shapes), path, "alignment")
    memory = spec.alignment.memory_windows
    if adapt is False:
        memory = 0
    elif adapt and not memory:
        memory = DEFAULT_MEMORY_WINDOWS
    try:
        decoder.alignment = Alignment.from_tensors(_numpy(aligned), memory)
    except ValueError as exc:
        raise CheckpointError(f"{path}: its alignment: {exc}; train it again") from None
    return decoder
