"""Classical decoders as checkpoints (riemann, mdm, csp-lda, ensembles), Euclidean alignment, and
``auto`` selection, on real EEG (S001 imagined left/right fist, runs 4 and 8)."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pylsl
import pytest
from conftest import SHARED_DATA
from mne.decoding import CSP
from pyriemann.classification import MDM
from pyriemann.estimation import Covariances
from pyriemann.tangentspace import TangentSpace
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from bci_app.config import BudgetsConfig, DspConfig, load_config
from bci_app.decoders import (
    DEFAULT_MEMORY_WINDOWS,
    Alignment,
    CspLdaDecoder,
    EnsembleDecoder,
    MdmDecoder,
    NetworkDecoder,
    RiemannDecoder,
    align_runs,
    load_decoder,
    save_decoder,
)
from bci_app.decoders.alignment import MAX_POWER_RATIO, sample_covariances
from bci_app.decoders.band import BandFilter
from bci_app.dsp.windows import Window
from bci_app.infer.worker import DecoderRunner, InferenceWorker
from bci_app.io import load_recording
from bci_app.nn.checkpoint import (
    CheckpointError,
    CheckpointMetadata,
    load_checkpoint,
    render_model_card,
)
from bci_app.nn.classifier import ClassifierConfig, EEGClassifier
from bci_app.train.data import extract_trials
from bci_app.train.decoders import fit_decoder, select_decoder
from bci_app.train.trainer import TrainSettings, evaluate_trials, windows_of

CONFIG = Path(__file__).resolve().parents[1] / "benchmarks" / "eegmmidb.yaml"
LEFT_RIGHT = {"T1": "left", "T2": "right"}


@pytest.fixture(scope="module")
def runs():
    """Trial windows of S001 runs 4 and 8 (imagined left vs right fist), one set per run."""
    config = load_config(CONFIG)
    folder = SHARED_DATA / "eegmmidb" / "S001"
    return [
        extract_trials([load_recording(folder / f"S001R{run}.edf")], LEFT_RIGHT, config)
        for run in ("04", "08")
    ]


def metadata_for(tw, decoder) -> CheckpointMetadata:
    from bci_app.decoders import decoder_spec

    return CheckpointMetadata(
        classes=list(tw.classes),
        channel_labels=list(tw.labels),
        model_rate_hz=tw.rate_hz,
        window_s=2.0,
        hop_s=0.25,
        dsp=DspConfig.from_config(load_config(CONFIG)),
        decoder=decoder_spec(decoder),
        training={"class_map": LEFT_RIGHT},
    )


def test_rebuilt_classical_decoders_predict_as_their_libraries(runs) -> None:
    """Fitted with pyRiemann / MNE / scikit-learn, rebuilt from arrays: the same probabilities
    as the libraries' own fitted pipelines."""
    train, test = runs
    covariances = Covariances(estimator="oas")
    library = {
        RiemannDecoder: make_pipeline(
            covariances, TangentSpace(metric="riemann"), LogisticRegression(max_iter=1000)
        ),
        MdmDecoder: make_pipeline(covariances, MDM(metric="riemann")),
        CspLdaDecoder: make_pipeline(
            CSP(n_components=4, reg="oas", log=True, norm_trace=False, rank="full"),
            LinearDiscriminantAnalysis(),
        ),
    }
    x_train, x_test = train.x.astype(np.float64), test.x[:40].astype(np.float64)
    for cls, pipeline in library.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = pipeline.fit(x_train, train.y).predict_proba(x_test)
        ours = cls.fit(train.x, train.y)
        rebuilt = cls.rebuild(ours.tensors(), ours.params(), ours.n_channels, ours.n_classes)
        probabilities, weights = rebuilt.predict(x_test)
        np.testing.assert_allclose(probabilities, expected, atol=1e-4, err_msg=cls.kind)
        assert weights.shape == (40, 64) and np.isclose(weights.max(), 1.0)
        assert np.all(weights >= 0)


def test_window_covariances_are_pyriemanns_oas_for_all_windows_at_once(runs) -> None:
    from bci_app.decoders import window_covariances

    x = runs[0].x[:50].astype(np.float64)
    expected = Covariances(estimator="oas").transform(x)
    np.testing.assert_allclose(window_covariances(x), expected, rtol=1e-8, atol=1e-5)
    flat = np.zeros((2, 4, 100))
    assert np.all(np.linalg.eigvalsh(window_covariances(flat)) > 0)  # the floor


def test_every_kind_round_trips_through_a_checkpoint_folder(runs, tmp_path) -> None:
    train, test = runs
    band = BandFilter(8, 30, train.rate_hz)
    x = band(train.x)
    decoders = []
    for fit in (RiemannDecoder.fit, MdmDecoder.fit, CspLdaDecoder.fit):
        decoder = fit(align_runs(x, train.run), train.y)
        decoder.band, decoder.alignment = band, Alignment.fit(x, memory_windows=30)
        decoders.append(decoder)
    network = NetworkDecoder(
        EEGClassifier(
            ClassifierConfig(n_electrodes=64, n_samples=320, n_classes=2, rate_hz=160.0),
            channel_labels=train.labels,
        ).eval()
    )
    decoders.append(EnsembleDecoder([decoders[0], network]))
    # what auto builds from a network averaged over seeds and another decoder (P300)
    seeds = EnsembleDecoder([network, NetworkDecoder(copy.deepcopy(network.model))])
    decoders.append(EnsembleDecoder([decoders[1], seeds]))
    for i, decoder in enumerate(decoders):
        folder = tmp_path / f"{i}-{decoder.kind}"
        metadata = metadata_for(train, decoder)
        save_decoder(folder, decoder, metadata, render_model_card(metadata))
        loaded, loaded_metadata = load_decoder(folder)
        assert loaded.kind == decoder.kind == loaded_metadata.decoder.kind
        decoder.reset()
        expected = decoder.predict(test.x[:30])
        got = loaded.predict(test.x[:30])
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=decoder.kind)
        card = (folder / "MODEL_CARD.md").read_text()
        assert f"`{decoder.kind}`" in card and "Electrode weights:" in card
    ensemble_card = (tmp_path / "3-ensemble" / "MODEL_CARD.md").read_text()
    assert "member `riemann`" in ensemble_card and "member `network`" in ensemble_card
    assert "band-pass 8-30 Hz" in ensemble_card and "following the session" in ensemble_card
    nested_card = (tmp_path / "4-ensemble" / "MODEL_CARD.md").read_text()
    assert "member `mdm`:" in nested_card
    assert "member `ensemble` of `network` x2:" in nested_card


def test_adaptation_is_switched_at_load_as_the_config_says(runs, tmp_path) -> None:
    """``model.adapt`` (None: as trained, False: off, True: on) reaches the loaded decoder."""
    train, _ = runs
    for adapt, folder in ((True, tmp_path / "on"), (False, tmp_path / "off")):
        fitted = fit_decoder("mdm", train, TrainSettings(), adapt=adapt)
        save_decoder(folder, fitted.decoder, metadata_for(train, fitted.decoder), "card")
    memory = {
        (name, adapt): load_decoder(tmp_path / name, adapt=adapt)[0].alignment.memory_windows
        for name in ("on", "off")
        for adapt in (None, False, True)
    }
    assert memory[("on", None)] == memory[("on", True)] == DEFAULT_MEMORY_WINDOWS
    assert memory[("off", None)] == memory[("on", False)] == memory[("off", False)] == 0
    assert memory[("off", True)] == DEFAULT_MEMORY_WINDOWS


def test_a_checkpoint_of_one_kind_never_loads_as_another(runs, tmp_path) -> None:
    train, _ = runs
    riemann = RiemannDecoder.fit(train.x, train.y)
    csp = CspLdaDecoder.fit(train.x, train.y)
    for decoder in (riemann, csp):
        metadata = metadata_for(train, decoder)
        save_decoder(tmp_path / decoder.kind, decoder, metadata, "card")
    with pytest.raises(CheckpointError, match="holds a riemann decoder, not a network"):
        load_checkpoint(tmp_path / "riemann")
    # metadata.json of the csp-lda checkpoint next to the riemann arrays
    (tmp_path / "riemann" / "metadata.json").write_text(
        (tmp_path / "csp-lda" / "metadata.json").read_text()
    )
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_decoder(tmp_path / "riemann")
    data = json.loads((tmp_path / "riemann" / "metadata.json").read_text())
    data["weights_sha256"] = None
    (tmp_path / "riemann" / "metadata.json").write_text(json.dumps(data))
    with pytest.raises(
        CheckpointError, match="weights of a riemann decoder but metadata.json says"
    ):
        load_decoder(tmp_path / "riemann")


def test_arrays_that_do_not_fit_the_kind_are_refused_by_name(runs, tmp_path) -> None:
    train, _ = runs
    decoder = RiemannDecoder.fit(train.x, train.y)
    decoder.coef = decoder.coef[:, :100]
    save_decoder(tmp_path / "m", decoder, metadata_for(train, decoder), "card")
    with pytest.raises(CheckpointError, match=r"riemann.coef has shape \(1, 100\), expected"):
        load_decoder(tmp_path / "m")
    decoder = MdmDecoder.fit(train.x, train.y)
    decoder.class_means[0, 0, 0] = np.nan
    save_decoder(tmp_path / "n", decoder, metadata_for(train, decoder), "card")
    with pytest.raises(CheckpointError, match="mdm.class_means contains NaN"):
        load_decoder(tmp_path / "n")
    # values that pass the shape checks but are no alignment: a clear error, never a ValueError
    # ("a bug") nor a whitener that amplifies a negative variance
    decoder = MdmDecoder.fit(train.x, train.y)
    decoder.alignment = Alignment.fit(train.x)
    for name, field, value in (
        ("negative", "initial_reference", -decoder.alignment.initial_reference),
        ("zero-scale", "scale", 0.0),
    ):
        setattr(decoder.alignment, field, value)
        save_decoder(tmp_path / name, decoder, metadata_for(train, decoder), "card")
        with pytest.raises(CheckpointError, match=f"{name}.*its alignment: .*train it again"):
            load_decoder(tmp_path / name)
        decoder.alignment = Alignment.fit(train.x)


def test_flat_and_duplicate_channels_give_finite_decoders(runs) -> None:
    """Rank-deficient covariances are shrunk: every kind fits and predicts without NaN."""
    train, _ = runs
    x = train.x.copy()
    x[:, 5] = 0.0  # a flat channel
    x[:, 7] = x[:, 6]  # a duplicated one
    for fit in (RiemannDecoder.fit, MdmDecoder.fit, CspLdaDecoder.fit):
        aligned = align_runs(x, train.run)
        decoder = fit(aligned, train.y)
        decoder.alignment = Alignment.fit(x, memory_windows=10)
        probabilities, weights = decoder.predict(x[:20])
        assert np.all(np.isfinite(probabilities)) and np.all(np.isfinite(weights))
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_alignment_recentres_and_adaptation_follows_the_session(runs) -> None:
    train, test = runs
    alignment = Alignment.fit(train.x)
    mean = sample_covariances(alignment.transform(train.x)).mean(axis=0)
    identity = alignment.scale**2 * np.eye(64)
    # Except in the (near-)null directions of the reference (the common average reference
    # removes one; they are floored, not inflated), the mean covariance is now scale^2 * I.
    eigenvalues = np.linalg.eigvalsh(mean) / alignment.scale**2
    assert np.sum(np.abs(eigenvalues - 1) < 0.01) >= 60
    assert eigenvalues.max() < 1.01
    # A session twice as loud: the fixed reference leaves it off-centre, adaptation follows it.
    louder = test.x * 2.0
    fixed = sample_covariances(alignment.transform(louder)).mean(axis=0)
    adapting = Alignment.fit(train.x, memory_windows=20)
    aligned = adapting.transform_causal(louder)
    followed = sample_covariances(aligned[-40:]).mean(axis=0)
    assert np.trace(fixed) / np.trace(identity) > 3.0
    assert np.trace(followed) / np.trace(identity) < 1.6
    assert adapting.observed == len(louder)
    adapting.reset()
    assert adapting.observed == 0 and np.array_equal(adapting.reference, adapting.initial_reference)


def test_adaptation_leaves_out_flat_windows_and_caps_an_artefacts_weight(runs) -> None:
    """A disconnected amplifier (flat windows) must not shrink the reference, one second of
    a popping electrode must not blow it up; a session truly 30x louder is still followed."""
    train, test = runs
    adapting = Alignment.fit(train.x, memory_windows=20)
    start = np.trace(adapting.reference)
    adapting.observe(np.zeros((40, *test.x.shape[1:]), dtype=np.float32))
    np.testing.assert_array_equal(adapting.reference, adapting.initial_reference)
    assert adapting.flat_windows == 40
    popping = test.x[:4].copy()
    popping[:, :2] += np.random.default_rng(0).normal(0, 5000, popping[:, :2].shape)
    adapting.observe(popping)  # ~10^5 x the reference's power on two electrodes
    # each of the 4 windows adds at most (MAX_POWER_RATIO - 1) / 20 of the trace (was 10^4x)
    assert np.trace(adapting.reference) <= (1 + (MAX_POWER_RATIO - 1) / 20) ** 4 * start * 1.000001
    louder = test.x * np.sqrt(30.0)
    aligned = adapting.transform_causal(np.concatenate([louder, louder]))
    followed = sample_covariances(aligned[-40:]).mean(axis=0)
    assert np.trace(followed) / (adapting.scale**2 * 64) < 1.6


def _window(seq: int, x: np.ndarray, stamp: float) -> Window:
    """Trial window ``x (C, T)`` as the dsp hands it to the worker, newest sample at ``stamp``."""
    return Window(
        seq=seq,
        start_index=seq * 40,
        data=x.T.copy(),
        first_timestamp=0.0,
        last_timestamp=stamp,
        arrival_time=stamp,
        cut_time=stamp,
        flags=0,
    )


def test_each_window_is_aligned_with_the_reference_of_the_windows_before_it(runs) -> None:
    train, test = runs
    adapting = Alignment.fit(train.x, memory_windows=20)
    fixed = Alignment.fit(train.x)
    aligned = adapting.transform_causal(test.x[:3])
    np.testing.assert_array_equal(aligned[0], fixed.transform(test.x[0]))
    assert adapting.observed == 3 and adapting.unsettled == 1  # the last one: until settle()
    # window 2 saw the reference after windows 0 and 1, and the last window moves it now
    replay = Alignment.fit(train.x, memory_windows=20)
    replay.observe(test.x[:2])
    np.testing.assert_allclose(aligned[2], replay.transform(test.x[2]), rtol=1e-5, atol=1e-4)
    before = replay.whitener.copy()
    replay.observe(test.x[2])
    assert replay.unsettled == 1
    replay.transform(test.x[3])  # settles what was observed first
    assert replay.unsettled == 0 and not np.array_equal(replay.whitener, before)
    np.testing.assert_allclose(replay.reference, adapting.reference, rtol=1e-12)


def test_the_worker_adapts_after_the_prediction_is_out(runs) -> None:
    train, test = runs
    decoder = fit_decoder("riemann", train, TrainSettings(), adapt=True).decoder
    unsettled_at_emit: list[int] = []
    worker = InferenceWorker(
        decoder,
        train.classes,
        list(range(64)),
        "cpu",
        BudgetsConfig(staleness_ms=1e9),
        emit=lambda prediction: unsettled_at_emit.append(decoder.alignment.unsettled),
        window_samples=320,
    )
    expected, _ = decoder.predict(test.x[:4])
    decoder.reset()
    for seq in range(4):
        prediction = worker.process(_window(seq, test.x[seq], pylsl.local_clock()))
        assert prediction is not None
        np.testing.assert_allclose(prediction.probabilities, expected[seq], atol=1e-5)
        assert decoder.alignment.unsettled == 0  # settled once the prediction was out
    assert unsettled_at_emit == [1, 1, 1, 1]
    assert decoder.alignment.observed == 4


def test_the_worker_runs_a_classical_decoder_and_resets_after_warm_up(runs) -> None:
    train, test = runs
    fitted = fit_decoder("riemann", train, TrainSettings(), adapt=True)
    decoder = fitted.decoder
    worker = InferenceWorker(
        decoder, train.classes, list(range(64)), "cpu", BudgetsConfig(), window_samples=320
    )
    assert isinstance(worker.runner, DecoderRunner)
    assert decoder.alignment.observed == 0  # warm-up windows did not move the reference
    expected, expected_weights = decoder.predict(test.x[:5])
    decoder.reset()
    for seq in range(5):
        prediction = worker.classify(_window(seq, test.x[seq], 2.0))
        np.testing.assert_allclose(prediction.probabilities, expected[seq], atol=1e-5)
        np.testing.assert_allclose(prediction.weights, expected_weights[seq], atol=1e-6)


def test_auto_scores_every_candidate_by_leave_one_run_out_and_keeps_the_best(runs) -> None:
    both = type(runs[0]).concatenate(runs)
    result, report = select_decoder(both, TrainSettings(), candidates=("riemann", "mdm", "csp-lda"))
    assert report["protocol"] == "leave one run out"
    assert set(report["candidates"]) == {
        "riemann",
        "mdm",
        "csp-lda",
        "riemann+mdm+csp-lda",
        "riemann+mdm",
        "riemann+csp-lda",
        "mdm+csp-lda",
    }
    for scores in report["candidates"].values():
        assert len(scores["fold_accuracy"]) == 2 and scores["n_trials"] == 30
    best = max(s["balanced_accuracy"] for s in report["candidates"].values())
    assert report["candidates"][report["chosen"]]["balanced_accuracy"] == best
    assert result.name == report["chosen"]
    # the refit decoder is the chosen kind and decodes the runs it was fitted on
    assert evaluate_trials(result.decoder, runs[1])["accuracy"] > 0.7


def test_too_few_trials_leave_a_decoder_out_or_refuse_it_by_name(runs) -> None:
    train, _ = runs
    trial_ids = np.unique(train.trial)
    few = windows_of(train, trial_ids[:12])  # 6 of each class: 4 in a training fold
    _, report = select_decoder(few, TrainSettings(), candidates=("se", "mdm"))
    assert "se" in report["left_out"] and "at least 5 trials per class" in report["left_out"]["se"]
    assert report["chosen"] == "mdm"
    from bci_app.decoders import DecoderError

    with pytest.raises(DecoderError, match="se needs at least 5 trials per class"):
        fit_decoder("se", windows_of(train, trial_ids[:8]), TrainSettings())


def test_auto_leaves_out_a_network_that_would_overrun_its_time_budget(runs) -> None:
    both = type(runs[0]).concatenate(runs)
    _, report = select_decoder(both, TrainSettings(), candidates=("mdm", "se"), budget_s=1.0)
    assert "se" not in report["candidates"] and report["chosen"] == "mdm"
    assert "past what is left of the 1 s budget" in report["left_out"]["se"]
    assert "--decoder se" in report["left_out"]["se"]


def test_unbalanced_classes_are_judged_by_balanced_accuracy(runs) -> None:
    train, test = runs
    left = np.unique(train.trial[train.y == 0])
    right = np.unique(train.trial[train.y == 1])
    unbalanced = windows_of(train, np.concatenate([left, right[:6]]))
    _, report = select_decoder(unbalanced, TrainSettings(), candidates=("riemann", "mdm"))
    assert report["protocol"] == "3 blocks of consecutive trials"  # one run
    fitted = fit_decoder("riemann", unbalanced, TrainSettings())
    metrics = evaluate_trials(fitted.decoder, test)
    confusion = np.array(metrics["confusion"])
    recall = np.diag(confusion) / confusion.sum(axis=1)
    assert metrics["balanced_accuracy"] == pytest.approx(recall.mean())


def test_band_filter_as_one_matrix_equals_the_forward_backward_pass() -> None:
    """The in-window band-pass runs as a matrix product; it is scipy's sosfiltfilt (padding
    and initial conditions included) within float32 rounding, for one window or a batch."""
    from scipy.signal import sosfiltfilt

    band = BandFilter(8, 30, 160.0)
    x = (np.random.default_rng(3).standard_normal((5, 8, 320)) * 20).astype(np.float32)
    expected = sosfiltfilt(band._sos, x.astype(np.float64), axis=-1)
    got = band(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max())
    np.testing.assert_allclose(band(x[2]), got[2], atol=1e-4)  # batch == window by window
