"""Training: datasets from EDF/BDF/FIF/XDF recordings and their markers, training, evaluation."""

from __future__ import annotations
