"""``bci-app export-bids``: real sessions into BIDS-EEG with mne-bids, read back with
``mne_bids.read_raw_bids``, and checked by the official BIDS validator (bids-validator-deno).

The app session is a real XDF file: the LabRecorder recording's EEG and markers plus the app's
outlets with the stream headers the real :class:`PredictionOutlets` publish."""

from __future__ import annotations

import csv
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA, last_json, run_cli
from xdf_files import _chunk, _varlen, synthetic_xdf_streams, write_xdf

from bci_app.cli import main
from bci_app.export import BidsExportError, export_bids, read_bids_session
from bci_app.io import load_recording
from bci_app.io.xdf import read_xdf_streams

LABRECORDER_XDF = SHARED_DATA / "xdf" / "S001R06-labrecorder.xdf"
EDF = SHARED_DATA / "eegmmidb" / "S001" / "S001R06.edf"
MODEL = REPO / "models" / "eegmmidb-s001-hands-feet"
CLASSES = {"T1": "hands", "T2": "feet"}
SESSION_S = 30.0  # seconds of the LabRecorder EEG in the app session
HOP_S = 0.5  # one prediction per hop


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def write_session_xdf(path: Path, streams: list[tuple[str, list, np.ndarray]]) -> None:
    """An XDF file of ``(header_xml, samples, times)`` streams (numeric samples as float32
    rows, string samples as str), with a file header datetime and footers."""
    out = bytearray(b"XDF:")
    out += _chunk(
        1,
        b'<?xml version="1.0"?><info><version>1.0</version>'
        b"<datetime>2026-11-26T05:55:51+0000</datetime></info>",
    )
    for sid, (xml, _, _) in enumerate(streams, 1):
        out += _chunk(2, struct.pack("<I", sid) + xml.encode())
    for sid, (_, samples, times) in enumerate(streams, 1):
        for first in range(0, len(times), 500):
            part = range(first, min(first + 500, len(times)))
            body = bytearray(struct.pack("<I", sid)) + _varlen(len(part))
            for i in part:
                body += b"\x08" + struct.pack("<d", times[i])
                if isinstance(samples[i], str):
                    body += _varlen(len(samples[i].encode())) + samples[i].encode()
                else:
                    body += np.asarray(samples[i], dtype="<f4").tobytes()
            out += _chunk(3, bytes(body))
    for sid, (_, _, times) in enumerate(streams, 1):
        footer = (
            f'<?xml version="1.0"?><info><first_timestamp>{times[0]}</first_timestamp>'
            f"<last_timestamp>{times[-1]}</last_timestamp>"
            f"<sample_count>{len(times)}</sample_count></info>"
        )
        out += _chunk(6, struct.pack("<I", sid) + footer.encode())
    path.write_bytes(bytes(out))


def _labrecorder_header(stream: dict) -> str:
    """The stream's header as LabRecorder wrote it (name, type, format, rate, channels)."""
    info = stream["info"]
    channels = "".join(
        f"<channel><label>{c['label'][0]}</label><unit>{c['unit'][0]}</unit>"
        f"<type>{c['type'][0]}</type></channel>"
        for c in (info["desc"][0] or {}).get("channels", [{}])[0].get("channel", [])
    )
    manufacturer = "<manufacturer>BCI2000 (PhysioNet EEGMMIDB)</manufacturer>" if channels else ""
    return (
        f'<?xml version="1.0"?><info><name>{info["name"][0]}</name><type>{info["type"][0]}</type>'
        f"<channel_count>{info['channel_count'][0]}</channel_count>"
        f"<channel_format>{info['channel_format'][0]}</channel_format>"
        f"<source_id>{info['source_id'][0]}</source_id>"
        f"<nominal_srate>{info['nominal_srate'][0]}</nominal_srate>"
        f"<desc>{manufacturer}<reference><label>linked ears</label></reference>"
        f"<channels>{channels}</channels></desc></info>"
    )


@pytest.fixture(scope="module")
def app_session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A session as `bci-app record` writes it: 30 s of the LabRecorder EEG and markers, and
    the app's predictions / latency / electrode-weights / status outlets (real headers)."""
    from bci_app.config import OutletsConfig
    from bci_app.infer.latency import STAGE_NAMES
    from bci_app.infer.outlets import PredictionOutlets

    streams = read_xdf_streams(LABRECORDER_XDF)
    eeg = next(s for s in streams if s["info"]["type"][0] == "EEG")
    markers = next(s for s in streams if s["info"]["type"][0] == "Markers")
    n = int(SESSION_S * 160)
    eeg_times = np.asarray(eeg["time_stamps"][:n])
    eeg_values = np.asarray(eeg["time_series"][:n])
    keep = np.asarray(markers["time_stamps"]) <= eeg_times[-1]
    marker_times = np.asarray(markers["time_stamps"])[keep]
    marker_values = [v[0] for v, k in zip(markers["time_series"], keep, strict=True) if k]

    labels = [c["label"][0] for c in eeg["info"]["desc"][0]["channels"][0]["channel"]]
    metadata = (MODEL / "metadata.json").read_text(encoding="utf-8")
    outlets = PredictionOutlets(
        OutletsConfig(session_id="export1"),
        ["hands", "feet"],
        labels,
        worker={"input_name": "EEGMMIDB-S001"},
        metadata_json=metadata,
    )
    ends = np.arange(int(4 * 160) - 1, n, int(HOP_S * 160))  # window ends: sample indices
    times = eeg_times[ends]
    p_hands = (np.arange(ends.size) % 5) / 4.0
    predictions = np.column_stack([p_hands, 1 - p_hands, (p_hands < 0.5).astype(float)])
    latency = np.tile(np.arange(1.0, len(STAGE_NAMES) + 1), (ends.size, 1))
    weights = np.full((ends.size, len(labels)), 1.0 / len(labels))
    status = ['{"state": "ok"}'] * 3
    headers = {
        name: getattr(outlets, name).get_info().as_xml()
        for name in ("predictions", "latency", "weights", "status")
    }
    path = tmp_path_factory.mktemp("session") / "session.xdf"
    write_session_xdf(
        path,
        [
            (_labrecorder_header(eeg), list(eeg_values), eeg_times),
            (_labrecorder_header(markers), marker_values, marker_times),
            (headers["predictions"], list(predictions), times),
            (headers["latency"], list(latency), times),
            (headers["weights"], list(weights), times),
            (headers["status"], status, eeg_times[[0, n // 2, n - 1]]),
        ],
    )
    del outlets
    return {
        "path": path,
        "ends": ends,
        "predictions": predictions,
        "latency": latency,
        "stages": STAGE_NAMES,
        "labels": labels,
        "n_markers": len(marker_values),
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, app_session: dict) -> dict:
    """One BIDS dataset: the LabRecorder file as sub-01 and the app session as sub-02."""
    root = tmp_path_factory.mktemp("bids") / "dataset"
    first = export_bids(LABRECORDER_XDF, root, "01", task="mi", run=6, classes=CLASSES)
    second = export_bids(app_session["path"], root, "02", task="mi", line_freq=60.0)
    return {"root": root, "labrecorder": first, "session": second}


def test_labrecorder_xdf_round_trip(dataset: dict) -> None:
    """read_raw_bids gives the app reader's samples (µV) and events, with class names."""
    import mne_bids

    result = dataset["labrecorder"]
    assert result.bids_path.name == "sub-01_task-mi_run-6_eeg.vhdr"
    assert result.derivatives == ()
    bids_path = mne_bids.get_bids_path_from_fname(result.bids_path).update(root=dataset["root"])
    raw = mne_bids.read_raw_bids(bids_path, verbose="error")
    recording = load_recording(LABRECORDER_XDF)
    assert raw.ch_names == list(recording.labels)
    assert raw.info["sfreq"] == 160.0
    np.testing.assert_allclose(raw.get_data(units="uV").T, recording.data, rtol=1e-6, atol=1e-6)
    samples = np.round(raw.annotations.onset * 160.0).astype(int)
    names = {"T0": "T0", **CLASSES}
    assert list(zip(samples.tolist(), raw.annotations.description, strict=True)) == [
        (s, names[m]) for s, m in recording.events
    ]
    assert result.trial_types == {"T0": 15, "hands": 7, "feet": 8}

    eeg_dir = result.bids_path.parent
    sidecar = json.loads((eeg_dir / "sub-01_task-mi_run-6_eeg.json").read_text())
    assert sidecar["PowerLineFrequency"] == 50.0
    assert sidecar["EEGReference"] == "n/a"
    assert sidecar["Manufacturer"] == "BCI2000 (PhysioNet EEGMMIDB)"  # the stream's desc
    assert "EEGMMIDB-S001" in sidecar["ManufacturersModelName"]
    assert "eegmmidb-s001-eeg" in sidecar["ManufacturersModelName"]
    assert sidecar["RecordingDuration"] == pytest.approx(124.99375)
    assert sidecar["EEGChannelCount"] == 64
    channels = read_tsv(eeg_dir / "sub-01_task-mi_run-6_channels.tsv")
    assert [c["name"] for c in channels] == list(recording.labels)
    assert {(c["type"], c["units"]) for c in channels} == {("EEG", "µV")}
    events = read_tsv(eeg_dir / "sub-01_task-mi_run-6_events.tsv")
    assert [int(e["sample"]) for e in events] == [s for s, _ in recording.events]
    levels = json.loads((eeg_dir / "sub-01_task-mi_run-6_events.json").read_text())
    assert "T1" in levels["trial_type"]["Levels"]["hands"]
    scans = read_tsv(dataset["root"] / "sub-01" / "sub-01_scans.tsv")
    assert scans[0]["acq_time"].startswith("2026-11-26T05:55:51")


def test_app_session_derivative(dataset: dict, app_session: dict) -> None:
    """The app's outlets land in derivatives/bci-app, on the EEG's time axis; the class names
    come from the model the session ran (its status outlet)."""
    result = dataset["session"]
    root = dataset["root"]
    events = read_tsv(result.bids_path.parent / "sub-02_task-mi_events.tsv")
    assert len(events) == app_session["n_markers"]
    assert {e["trial_type"] for e in events} <= {"T0", "hands", "feet"}
    assert {"hands", "feet"} <= {e["trial_type"] for e in events}
    sidecar = json.loads((result.bids_path.parent / "sub-02_task-mi_eeg.json").read_text())
    assert sidecar["PowerLineFrequency"] == 60.0
    assert sidecar["EEGReference"] == "linked ears"  # desc/reference/label

    folder = root / "derivatives" / "bci-app"
    description = json.loads((folder / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "bci-app"
    eeg_dir = folder / "sub-02" / "eeg"
    assert sorted(p.name for p in result.derivatives) == [
        "sub-02_task-mi_desc-latency_events.tsv",
        "sub-02_task-mi_desc-predictions_events.tsv",
        "sub-02_task-mi_desc-weights_events.tsv",
    ]
    rows = read_tsv(eeg_dir / "sub-02_task-mi_desc-predictions_events.tsv")
    ends = app_session["ends"]
    assert len(rows) == ends.size
    np.testing.assert_allclose([float(r["onset"]) for r in rows], ends / 160.0, atol=1e-6)
    predictions = app_session["predictions"]
    np.testing.assert_allclose([float(r["hands"]) for r in rows], predictions[:, 0], atol=1e-6)
    assert [r["predicted"] for r in rows] == [["hands", "feet"][int(k)] for k in predictions[:, 2]]
    meta = json.loads((eeg_dir / "sub-02_task-mi_desc-predictions_events.json").read_text())
    assert meta["onset"]["Units"] == "s"
    assert meta["hands"]["Units"] == "probability"
    assert meta["StreamName"] == "bci-app-predictions"
    assert meta["BciApp"]["session_id"] == "export1"
    assert meta["Sources"] == ["bids:raw:sub-02/eeg/sub-02_task-mi_eeg.vhdr"]
    latency = read_tsv(eeg_dir / "sub-02_task-mi_desc-latency_events.tsv")
    assert list(latency[0]) == ["onset", "duration", "lsl_time", *app_session["stages"]]
    assert float(latency[0]["e2e"]) == app_session["latency"][0, -1]
    weights = read_tsv(eeg_dir / "sub-02_task-mi_desc-weights_events.tsv")
    assert list(weights[0])[3:] == [label for label in app_session["labels"]]


def _validator() -> Path | None:
    for candidate in (
        Path(sys.executable).parent / "bids-validator-deno",
        shutil.which("bids-validator-deno"),
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def test_bids_validator_zero_errors(dataset: dict) -> None:
    """The official validator (bids-validator-deno, with the derivative: -r) finds no error."""
    validator = _validator()
    if validator is None:
        pytest.skip("bids-validator-deno is not installed (pip install bids-validator-deno)")
    env = {**os.environ, "NO_COLOR": "1"}
    probe = subprocess.run(
        [str(validator), "--version"], capture_output=True, text=True, timeout=120, env=env
    )
    if probe.returncode != 0:
        pytest.skip(f"bids-validator-deno cannot run here: {probe.stderr.strip()[-500:]}")
    done = subprocess.run(
        [str(validator), str(dataset["root"]), "-r", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    report = json.loads(done.stdout)
    derivatives = report.get("derivativesSummary", {})
    assert list(derivatives) == ["/derivatives/bci-app/"]  # -r validated the derivative too
    issues = [
        issue for part in (report, *derivatives.values()) for issue in part["issues"]["issues"]
    ]
    errors = [i for i in issues if i["severity"] == "error"]
    assert errors == [], json.dumps(errors, indent=1)[:4000]
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"eeg"} <= {m.lower() for m in report["summary"]["modalities"]}
    assert sorted(report["summary"]["subjects"]) == ["01", "02"]
    warned = sorted({f"{i['code']} {i.get('subCode', '')}" for i in issues})
    print(f"validator: 0 errors, {len(warned)} kinds of warning: {', '.join(warned)}")


def test_cli_edf_json(tmp_path: Path) -> None:
    """`bci-app export-bids` on an EDF: one JSON last line; no app outlets, no derivative."""
    root = tmp_path / "bids"
    done = run_cli(
        "export-bids", str(EDF), "--root", str(root), "--subject", "S001", "--session", "1",
        "--task", "imagery", "--run", "6", "--classes", "T1:hands", "T2:feet", "--json",
    )  # fmt: skip
    result = last_json(done)
    assert set(result) >= {"root", "bids_path", "n_events", "derivatives"}
    assert result["root"] == str(root)
    assert result["bids_path"].endswith(
        "sub-S001/ses-1/eeg/sub-S001_ses-1_task-imagery_run-6_eeg.vhdr"
    )
    recording = load_recording(EDF)
    assert result["n_events"] == len(recording.events) == 30
    assert result["derivatives"] == []
    assert "no derivative written" in done.stdout
    events = read_tsv(Path(result["bids_path"]).with_name(
        "sub-S001_ses-1_task-imagery_run-6_events.tsv"
    ))  # fmt: skip
    assert [(int(e["sample"]), e["trial_type"]) for e in events] == [
        (s, {"T0": "T0", **CLASSES}[m]) for s, m in recording.events
    ]
    assert not (root / "derivatives").exists()
    sidecar = json.loads(Path(result["bids_path"]).with_suffix(".json").read_text())
    assert sidecar["Manufacturer"] == "n/a"  # not the BrainVision format's maker
    (scan,) = read_tsv(root / "sub-S001" / "ses-1" / "sub-S001_ses-1_scans.tsv")
    assert scan["acq_time"].startswith("2009-08-12T16:15:00")  # the EDF header's start


def test_cli_model_classes_overwrite_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """--model gives the class names; a second export needs --overwrite; a bad label exits 2
    naming the fix (in-process ``main``, as the console script runs it)."""
    root = tmp_path / "bids"
    args = ["export-bids", str(LABRECORDER_XDF), "--root", str(root), "--subject", "01"]
    assert main([*args, "--model", str(MODEL), "--json"]) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["trial_types"] == {"T0": 15, "hands": 7, "feet": 8}
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert main([*args, "--overwrite", "--json"]) == 0
    replaced = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert replaced["trial_types"] == {"T0": 15, "T1": 7, "T2": 8}  # the markers as recorded
    assert main([*args[:-1], "S-01"]) == 2
    err = capsys.readouterr().err
    assert "--subject 'S-01'" in err and "--subject S01" in err


def test_stream_choice_and_bad_input(tmp_path: Path) -> None:
    """Several EEG streams need --stream; no EEG, bad labels and a non-BIDS root are refused
    with the fix in the message."""
    eeg, markers, values = synthetic_xdf_streams()
    other = {**eeg, "name": "second-eeg"}
    two = tmp_path / "two.xdf"
    write_xdf(two, [eeg, other, markers])
    with pytest.raises(BidsExportError, match="several EEG streams.*--stream NAME"):
        export_bids(two, tmp_path / "a", "01")
    with pytest.raises(BidsExportError, match="no stream named 'nope'.*--stream"):
        export_bids(two, tmp_path / "a", "01", stream="nope")
    with pytest.raises(BidsExportError, match="not EEG"):
        export_bids(two, tmp_path / "a", "01", stream="synthetic-markers")
    session = read_bids_session(two, stream="second-eeg")
    assert session.stream_name == "second-eeg"
    # channel types from the description: the trigger channel is kept as misc, not as EEG
    assert session.ch_types == ("eeg", "eeg", "eeg", "misc")
    np.testing.assert_allclose(session.data[:, :2], values[:, :2] * 1e6, rtol=1e-6)
    result = export_bids(two, tmp_path / "a", "01", stream="second-eeg")
    assert result.stream == "second-eeg" and result.n_events == 3  # one marker after the end

    only_markers = tmp_path / "markers.xdf"
    write_xdf(only_markers, [markers])
    with pytest.raises(Exception, match="no numeric stream|no EEG stream") as info:
        export_bids(only_markers, tmp_path / "b", "01")
    assert "Record the EEG stream" in str(info.value)

    with pytest.raises(BidsExportError, match="letters and digits only.*--task mi1"):
        export_bids(two, tmp_path / "c", "01", task="mi_1", stream="second-eeg")
    with pytest.raises(BidsExportError, match="a BIDS run is a number"):
        export_bids(two, tmp_path / "c", "01", run="first", stream="second-eeg")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("not BIDS")
    with pytest.raises(BidsExportError, match="not a BIDS dataset"):
        export_bids(two, busy, "01", stream="second-eeg")
    with pytest.raises(BidsExportError, match="none of the --classes markers.*left, right"):
        export_bids(two, tmp_path / "e", "01", stream="second-eeg", classes=CLASSES)
    with pytest.raises(BidsExportError, match="--stream chooses among the streams"):
        export_bids(EDF, tmp_path / "d", "01", stream="x")


def test_a_dropout_in_the_eeg_is_marked_where_the_data_file_joins_it(tmp_path: Path) -> None:
    """The BrainVision file holds the samples on either side of a dropout back to back: each
    join is an event (BAD_ACQ_SKIP) that events.json explains, so no epoch is cut across it."""
    eeg, markers, _ = synthetic_xdf_streams()  # 2 s without samples before sample 1000
    path = tmp_path / "dropout.xdf"
    write_xdf(path, [eeg, markers])
    result = export_bids(path, tmp_path / "bids", "01")
    assert result.trial_types["BAD_ACQ_SKIP"] == 1 and result.n_events == 3
    events = read_tsv(result.bids_path.parent / "sub-01_task-bci_events.tsv")
    joins = [e for e in events if e["trial_type"] == "BAD_ACQ_SKIP"]
    assert [(int(e["sample"]), float(e["onset"])) for e in joins] == [(1000, 10.0)]
    levels = json.loads((result.bids_path.parent / "sub-01_task-bci_events.json").read_text())
    assert "2.000 s skipped" in levels["trial_type"]["Levels"]["BAD_ACQ_SKIP"]
