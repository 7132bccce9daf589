"""Calibration: the cue paradigm, its markers and recording, training, online feedback."""
