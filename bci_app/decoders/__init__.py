"""Decoders on the online windows: the attention network and the classical ones (pyRiemann,
CSP+LDA), an ensemble of them, the Euclidean alignment they share, and their checkpoints."""

from __future__ import annotations

from bci_app.decoders.alignment import Alignment, align_runs, window_covariances
from bci_app.decoders.base import Decoder, DecoderError, decoder_class
from bci_app.decoders.checkpoint import (
    DEFAULT_MEMORY_WINDOWS,
    decoder_spec,
    load_decoder,
    save_decoder,
)
from bci_app.decoders.csp import CspLdaDecoder
from bci_app.decoders.ensemble import EnsembleDecoder
from bci_app.decoders.network import NetworkDecoder
from bci_app.decoders.riemann import MdmDecoder, RiemannDecoder

__all__ = [
    "DEFAULT_MEMORY_WINDOWS",
    "Alignment",
    "CspLdaDecoder",
    "Decoder",
    "DecoderError",
    "EnsembleDecoder",
    "MdmDecoder",
    "NetworkDecoder",
    "RiemannDecoder",
    "align_runs",
    "decoder_class",
    "decoder_spec",
    "load_decoder",
    "save_decoder",
    "window_covariances",
]
