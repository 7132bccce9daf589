"""What a calibration leaves besides its model: ``report.html`` written with the trained model, and
the recording exported as BIDS-EEG (``--bids-root`` at the end, or the "Export to BIDS…" button).

The Qt-free calls run on a calibration recording as the calibration writes it: the simulator's
EEG and its cue schedule (class-name markers, one trial interrupted by ``bci-app:invalid``) in an
XDF file, trained on by the real trainer. The window runs one short real calibration on the
simulator (LSL, recorder, trainer, report, mne-bids)."""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from pydantic import ValidationError
from xdf_files import write_xdf

from bci_app.calibrate.controller import INVALID_MARKER
from bci_app.calibrate.outputs import (
    bids_recording_path,
    check_bids_target,
    export_calibration,
    write_calibration_report,
)
from bci_app.calibrate.settings import CalibrationSettings, Timings
from bci_app.calibrate.training import train_calibration
from bci_app.config import parse_config
from bci_app.export import BidsExportError
from bci_app.gui.calibration import CalibrationWindow
from bci_app.report import SECTIONS
from bci_app.sources.simulator import EEGSimulator, SimulatorSettings

CLASSES = ["left_hand", "right_hand"]
N_TRIALS = 17  # cues in the recording
IMAGERY_S = 3.0
INTERRUPTED = 4  # this trial's cue is followed by bci-app:invalid (a pause)


@dataclass(frozen=True)
class Session:
    folder: Path
    cues: dict[str, int]  # cue markers per class in the file
    valid: dict[str, int]  # without the interrupted trial


def read_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    """A calibration folder: ``calibration.xdf`` (64-channel simulator EEG at 160 Hz in µV and
    the cue markers, LSL times) and ``model/`` trained on it by the calibration's trainer."""
    folder = tmp_path_factory.mktemp("calibration")
    settings = SimulatorSettings(
        classes=tuple(CLASSES), imagery_s=IMAGERY_S, fixation_s=2.0, rest_min_s=1.5,
        rest_max_s=2.0, seed=5,
    )  # fmt: skip
    simulator = EEGSimulator(settings)
    trials = [simulator.schedule.trial(k) for k in range(N_TRIALS)]
    last = trials[-1]
    n = last.stop + round(settings.rate_hz)
    values = simulator.generate(n)
    t0 = 5000.0  # LSL seconds
    times = t0 + np.arange(n) / settings.rate_hz
    labels, stamps = [], []
    for k, trial in enumerate(trials):
        labels.append(trial.class_name)
        stamps.append(float(times[trial.cue]))
        if k == INTERRUPTED:
            labels.append(INVALID_MARKER)
            stamps.append(float(times[trial.cue]) + 1.0)
    eeg = {
        "name": "bci-app-sim", "type": "EEG", "rate": settings.rate_hz, "fmt": "float32",
        "channels": [(label, "microvolts", "EEG") for label in simulator.labels],
        "times": times.tolist(), "values": values,
    }  # fmt: skip
    markers = {
        "name": "bci-app-cues", "type": "Markers", "rate": 0, "fmt": "string",
        "times": stamps, "values": labels,
    }  # fmt: skip
    write_xdf(folder / "calibration.xdf", [eeg, markers])
    cues = Counter(t.class_name for t in trials)
    valid = Counter(t.class_name for k, t in enumerate(trials) if k != INTERRUPTED)
    config = parse_config({"model": {"device": "cpu"}, "windows": {"length": 1.0, "hop": 0.5}})
    started = time.perf_counter()
    metrics = train_calibration(
        folder / "calibration.xdf", CLASSES, folder / "model", config, imagery_s=IMAGERY_S,
        decoder="csp-lda", cv_folds=4,
    )  # fmt: skip
    print(f"trained csp-lda on the calibration in {time.perf_counter() - started:.1f} s")
    assert metrics["decoder"] == "csp-lda"
    return Session(folder, dict(cues), dict(valid))


def test_report_is_written_with_the_trained_model(session: Session) -> None:
    folder = session.folder
    started = time.perf_counter()
    summary = write_calibration_report(
        folder / "calibration.xdf",
        folder / "report.html",
        CLASSES,
        folder / "model",
        imagery_s=IMAGERY_S,
    )
    print(f"calibration report: {time.perf_counter() - started:.1f} s {summary.stage_seconds}")
    assert summary.out == folder / "report.html" and summary.out.is_file()
    assert summary.sections == SECTIONS
    assert summary.decoder.endswith("(csp-lda)")  # the model, scored on the file
    # The interrupted trial is left out, as in training.
    assert summary.trials == session.valid
    assert summary.accuracy is not None and summary.accuracy >= 0.75
    text = summary.out.read_text(encoding="utf-8")
    assert str(folder / "model") in text and text.count("data:image/png;base64,") >= 6


def test_calibration_exports_to_bids_with_its_class_names(session: Session, tmp_path: Path) -> None:
    root = tmp_path / "bids"
    started = time.perf_counter()
    result = export_calibration(
        session.folder / "calibration.xdf", root, CLASSES, subject="07", session="2", line_freq=50.0
    )
    print(f"BIDS export of the calibration: {time.perf_counter() - started:.1f} s")
    expected = bids_recording_path(root, "07", "2", "calibration")
    assert result.bids_path == expected and expected.is_file()
    assert expected.name == "sub-07_ses-2_task-calibration_eeg.vhdr"
    assert (root / "dataset_description.json").is_file()
    assert result.n_channels == 64 and result.rate_hz == 160.0
    events = read_tsv(expected.parent / "sub-07_ses-2_task-calibration_events.tsv")
    types = Counter(row["trial_type"] for row in events)
    # Every cue as recorded (the interrupted one too, followed by its invalid marker).
    assert types == {**session.cues, INVALID_MARKER: 1}
    assert result.trial_types == dict(types)
    # A second calibration under the same names is refused before anything is written.
    with pytest.raises(BidsExportError, match="already exists.*--bids-session"):
        check_bids_target(root, "07", "2", "calibration")
    check_bids_target(root, "07", "3", "calibration")  # the next session is fine


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": "sub_01"}, r"--bids-subject 'sub_01'.*letters and digits.*sub01"),
        ({"session": "2024-05-01"}, r"--bids-session '2024-05-01'.*20240501"),
        ({"task": "motor imagery"}, r"--bids-task 'motor imagery'.*motorimagery"),
    ],
)
def test_bad_bids_labels_are_refused_up_front(tmp_path: Path, kwargs, message) -> None:
    with pytest.raises(BidsExportError, match=message):
        check_bids_target(tmp_path / "bids", **kwargs)
    option = {"subject": "bids_subject", "session": "bids_session", "task": "bids_task"}
    (key, value), = kwargs.items()  # fmt: skip
    with pytest.raises(ValidationError, match=message):
        CalibrationSettings(
            classes=tuple(CLASSES), trials_per_class=4, out_dir=tmp_path, **{option[key]: value}
        )


def test_a_folder_that_is_not_a_bids_dataset_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BidsExportError, match="not a BIDS dataset"):
        check_bids_target(tmp_path)
    with pytest.raises(BidsExportError, match="is a file"):
        check_bids_target(tmp_path / "notes.txt")


def test_the_command_line_checks_bids_options_before_the_session(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli(
        "calibrate", "--classes", "left_hand", "right_hand", "--trials", "10",
        "--out", str(tmp_path / "session"), "--bids-root", str(tmp_path / "bids"),
        "--bids-subject", "P-01", "--no-report", "--json",
    )  # fmt: skip
    print(f"refused in {time.monotonic() - started:.1f} s")
    assert result.returncode == 2, result.stderr
    assert "--bids-subject 'P-01'" in result.stderr and "P01" in result.stderr
    assert not (tmp_path / "session").exists()  # no session started


# -- the window: a short real calibration on the simulator ----------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~30 s on a quiet machine; real time, so a busy one takes longer
def test_window_writes_the_report_exports_and_the_button_exports_again(qtbot, tmp_path):
    config = parse_config(
        {
            "outlets": {"enabled": False},
            "model": {"device": "cpu"},
            "windows": {"length": 0.5, "hop": 0.25},  # windows inside 1 s of imagery
            "gui": {"separate_process": False},
        }
    )
    settings = CalibrationSettings(
        classes=tuple(CLASSES),
        trials_per_class=5,  # csp-lda needs 4 of each class in every training fold
        out_dir=tmp_path / "session",
        timings=Timings(fixation_s=0.3, imagery_s=1.0, rest_min_s=0.2, rest_max_s=0.3),
        feedback_trials=0,
        decoder="csp-lda",
        bids_root=tmp_path / "bids",
        bids_subject="42",
    )
    settings.out_dir.mkdir(parents=True)
    started = time.monotonic()
    window = CalibrationWindow(config, settings)
    qtbot.addWidget(window)
    window.show()
    assert not window.export_button.isEnabled()  # nothing recorded yet
    assert window.export_bids(tmp_path / "early") is False
    qtbot.waitUntil(lambda: window.state in ("results", "error"), timeout=90_000)
    assert window.state == "results", window.error
    trained = time.monotonic()
    qtbot.waitUntil(lambda: not window.outputs_pending, timeout=90_000)
    print(
        f"window: calibration + training {trained - started:.0f} s, then report and BIDS "
        f"export {time.monotonic() - trained:.0f} s"
    )
    summary = window.summary
    assert summary["warnings"] == [], summary["warnings"]
    # The report, next to the model, with it; the results view links to it.
    report = summary["report"]
    assert report["path"] == str(settings.report_html) == summary["report_path"]
    assert settings.report_html.is_file() and report["decoder"].endswith("(csp-lda)")
    # Every valid trial (the first may lie too near the file's start for the report's 1 s
    # baseline before the cue: the session starts 0.5 s after the recorder).
    assert set(report["trials"]) == set(CLASSES) and 9 <= sum(report["trials"].values()) <= 10
    assert window.report_label.isVisible()
    assert "Open report" in window.report_label.text()
    assert str(settings.report_html.resolve()) in window.report_label.text()
    # --bids-root: the recording exported at the end, with the class names.
    bids = summary["bids"]
    assert bids["error"] is None and bids["subject"] == "42" and bids["task"] == "calibration"
    assert Path(bids["bids_path"]) == bids_recording_path(tmp_path / "bids", "42")
    assert Path(bids["bids_path"]).is_file() and summary["bids_path"] == bids["bids_path"]
    assert bids["trial_types"]["left_hand"] >= 5 and bids["trial_types"]["right_hand"] >= 5
    # The button's method: into another dataset, shown in the results view.
    assert window.export_button.isEnabled()
    assert window.export_bids(tmp_path / "chosen") is True
    assert not window.export_button.isEnabled()  # while it runs
    qtbot.waitUntil(lambda: not window.outputs_pending, timeout=60_000)
    chosen = bids_recording_path(tmp_path / "chosen", "42")
    assert chosen.is_file() and summary["bids"]["bids_path"] == str(chosen)
    assert str(chosen) in window.bids_label.text() and window.export_button.isEnabled()
    # The same target again: refused at once, as a warning; nothing is lost.
    assert window.export_bids(tmp_path / "chosen") is False
    assert "already exists" in window.bids_label.text() and len(summary["warnings"]) == 1
    assert summary["bids"]["error"] and summary["bids_path"] == str(chosen)  # still there
    # A report that cannot be written is a warning; the model and the recording stay.
    settings.report_html.unlink()
    settings.report_html.mkdir()
    window._write_report()
    qtbot.waitUntil(lambda: not window.outputs_pending, timeout=60_000)
    assert summary["report"]["path"] is None and "is a folder" in summary["report"]["error"]
    assert summary["report_path"] is None
    assert "report could not be written" in window.report_label.text()
    assert "report could not be written" in summary["warnings"][-1]
    assert (settings.model_dir / "metadata.json").is_file()
    assert settings.calibration_xdf.is_file() and window.state == "results"
    window.close()
