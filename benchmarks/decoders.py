"""Decoders against the field's peers, leave one run out: ``bci-app bench decoding`` (see
:mod:`bci_app.bench.decoding` for the protocol), runnable from a checkout.

    python benchmarks/decoders.py [--data DIR] [--subject S001] [--tasks ...] [--methods ...]
                                  [--epochs N] [--json]
"""

from __future__ import annotations

import sys

from bci_app.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "decoding", *sys.argv[1:]]))
