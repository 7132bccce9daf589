"""Decoders on the online windows: the attention network and the classical ones (pyRiemann,
CSP+LDA; xDAWN and shrinkage LDA for ERPs; FBCCA and a filter bank for SSVEP), an ensemble of
them, the Euclidean alignment they share, and their checkpoints."""

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
from bci_app.decoders.erp import ShrinkageLdaDecoder, XdawnRiemannDecoder
from bci_app.decoders.network import NetworkDecoder
from bci_app.decoders.riemann import MdmDecoder, RiemannDecoder
from bci_app.decoders.ssvep import FbccaDecoder, FilterBankRiemannDecoder

__all__ = [
    "DEFAULT_MEMORY_WINDOWS",
    "Alignment",
    "CspLdaDecoder",
    "Decoder",
    "DecoderError",
    "EnsembleDecoder",
    "FbccaDecoder",
    "FilterBankRiemannDecoder",
    "MdmDecoder",
    "NetworkDecoder",
    "RiemannDecoder",
    "ShrinkageLdaDecoder",
    "XdawnRiemannDecoder",
    "align_runs",
    "decoder_class",
    "decoder_spec",
    "load_decoder",
    "save_decoder",
    "window_covariances",
]
