"""``bci-app bench decoding``: every decoder, ``auto`` and the field's peers on the same
leave-one-run-out folds (train on the other runs of a task, test on the held-out run, every run
in turn; never a split inside one run).

Tasks (PhysioNet EEGMMIDB): imagined both fists vs both feet (runs 6, 10, 14) and imagined left
vs right fist (runs 4, 8, 12); the runs present under ``DATA/SUBJECT`` are used (S001 in
``../shared/data`` has 6/10 and 4/8, so there each fold trains on one run and tests on the
other). The peers, as their libraries define them, on MNE epochs 0.5-2.5 s after the cue of a
zero-phase 8-30 Hz FIR band-pass: pyRiemann's OAS covariances + tangent space + logistic
regression, pyRiemann's MDM, and mne.decoding.CSP (4 components, log) + LDA; and two networks,
braindecode's EEGNet and ShallowFBCSPNet, each trained through braindecode's EEGClassifier (skorch)
on the same epochs in microvolts with its motor-imagery examples' recipe (:func:`network_peers`;
when braindecode cannot be imported the task's ``peers_missing`` says why). Ours: each decoder
through the app's own causal dsp and online windows (``benchmarks/eegmmidb.yaml``), per-trial
decision from the mean window probability, windows fed in time order (an adapting decoder follows
the test run without its labels, as it would live); ``riemann (no adaptation)`` measures what the
adaptation adds, and with three runs or more ``riemann (adapted on another run)`` trains on one
run, adapts on a second without labels and tests on the third. ``auto`` chooses on the training
runs alone. ``--ablation`` adds the SE network's recipe with one choice taken back at a time,
and the previous recipe. Per fold: accuracy, balanced accuracy, kappa and training seconds; per
method the means; ``best_peer`` is the best classical peer, ``best_network_peer`` the better
braindecode network. The last line is one JSON object.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bci_app.config import load_config
from bci_app.decoders import Decoder
from bci_app.io import load_recording
from bci_app.train.data import TrialWindows, extract_trials
from bci_app.train.decoders import CLASSICAL, NETWORKS, fit_decoder, select_decoder
from bci_app.train.metrics import classification_metrics
from bci_app.train.trainer import TrainSettings, evaluate_trials

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "eegmmidb"
CONFIG = ROOT / "benchmarks" / "eegmmidb.yaml"
TASKS = {
    "imagined_hands_vs_feet": (("06", "10", "14"), {"T1": "hands", "T2": "feet"}),
    "imagined_left_vs_right": (("04", "08", "12"), {"T1": "left", "T2": "right"}),
}
EPOCH_S = (0.5, 2.5)  # peers' epoch after the cue (s)
BAND_HZ = (8.0, 30.0)
#: The classical peers; ``best_peer`` (and ``se_minus_best_peer``) is the best of these.
PEERS = ("pyriemann_ts_lr", "pyriemann_mdm", "csp_lda")
#: braindecode's networks (:func:`network_peers`); ``best_network_peer`` is the better of these.
NETWORK_PEERS = ("braindecode_eegnet", "braindecode_shallow")
#: Their training, after braindecode's motor-imagery examples (AdamW, cosine annealing, a fixed
#: number of epochs, no validation split) at the size of these folds (on S001 one run of 15
#: trials): batches of 8, as a batch of 16 or more with braindecode's drop_last trains on nothing.
#: 50 epochs (100 steps) is a time budget, not a figure tuned on the held-out runs: both fit
#: their training run (training accuracy 1.0), and on a 2-core machine one fold takes about
#: 5-14 s for EEGNet and 4-7 s for Shallow. Torch keeps its own thread count (2 there): one
#: thread was slower (Shallow 4.2 s against 1.6 s for 20 epochs), except on a machine busy
#: with other work.
BRAINDECODE_EPOCHS = 50
BRAINDECODE_BATCH = 8
ADAPTATION_OFF = "riemann (no adaptation)"
ADAPTED_ELSEWHERE = "riemann (adapted on another run)"
#: The SE network's recipe with one choice taken back (``--ablation``), and the recipe before
#: the last two (every window each epoch, early stopping on held-out trials, no band, EEGNet).
ABLATION = {
    "se (EEGNet body)": ({}, {"network_body": "eegnet"}),
    "se (no band)": ({"band_hz": None}, {}),
    "se (all windows each epoch)": ({}, {"crops_per_trial": None}),
    "se (early stopping)": ({}, {"early_stopping": True}),
    "se (previous recipe)": (
        {"band_hz": None},
        {
            "epochs": 80,
            "batch_size": 32,
            "learning_rate": 1e-3,
            "crops_per_trial": None,
            "early_stopping": True,
            "network_body": "eegnet",
        },
    ),  # fmt: skip
}


def peers() -> dict:
    """Fresh peer pipelines, as pyRiemann and MNE define them."""
    from mne.decoding import CSP
    from pyriemann.classification import MDM
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return {
        "pyriemann_ts_lr": make_pipeline(
            Covariances(estimator="oas"), TangentSpace(), LogisticRegression(max_iter=1000)
        ),
        "pyriemann_mdm": make_pipeline(Covariances(estimator="oas"), MDM()),
        "csp_lda": make_pipeline(
            CSP(n_components=4, reg=None, log=True, norm_trace=False),
            LinearDiscriminantAnalysis(),
        ),
    }


def network_peers(
    n_chans: int, n_times: int, n_classes: int, n_trials: int
) -> dict[str, Callable[[], object]]:
    """Builders of fresh braindecode classifiers, as braindecode defines them: EEGNet (v4) with
    AdamW at lr 1e-3 and ShallowFBCSPNet with AdamW at lr 0.0625 * 0.01 (its examples' rates),
    each in braindecode's ``EEGClassifier`` with cosine annealing over
    :data:`BRAINDECODE_EPOCHS`, batches of :data:`BRAINDECODE_BATCH`, no validation split, on
    the CPU, for ``n_trials`` training trials of ``(n_chans, n_times)`` samples in microvolts.
    Raises what importing braindecode raises (ImportError, or OSError from its torchaudio)."""
    import torch
    from braindecode import EEGClassifier
    from braindecode.models import ShallowFBCSPNet
    from skorch.callbacks import LRScheduler

    try:
        from braindecode.models import EEGNet  # braindecode >= 1.0
    except ImportError:
        from braindecode.models import EEGNetv4 as EEGNet  # braindecode 0.8: the same network

    epochs = BRAINDECODE_EPOCHS

    def classifier(module: torch.nn.Module, lr: float) -> object:
        return EEGClassifier(
            module,
            optimizer=torch.optim.AdamW,
            optimizer__lr=lr,
            optimizer__weight_decay=0.0,
            batch_size=BRAINDECODE_BATCH,
            # braindecode drops the last batch; keep it, unless it is one trial (BatchNorm)
            iterator_train__drop_last=n_trials % BRAINDECODE_BATCH == 1,
            train_split=None,
            max_epochs=epochs,
            callbacks=[
                ("lr_scheduler", LRScheduler("CosineAnnealingLR", T_max=max(epochs - 1, 1)))
            ],
            device="cpu",
            verbose=0,
        )

    shape = {"n_chans": n_chans, "n_outputs": n_classes, "n_times": n_times}
    return {
        "braindecode_eegnet": lambda: classifier(EEGNet(**shape), 1e-3),
        "braindecode_shallow": lambda: classifier(
            ShallowFBCSPNet(**shape, final_conv_length="auto"), 0.0625 * 0.01
        ),
    }


def _fit_network_peers(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    n_classes: int,
    seed: int,
) -> dict[str, tuple[np.ndarray, float]]:
    """Each braindecode network trained on one fold (epochs in volts, scaled to microvolts as
    braindecode's examples do): name -> (predicted classes of ``x_test``, training seconds).
    Seeds with braindecode's ``set_random_seeds`` before each network."""
    from braindecode.util import set_random_seeds

    x_train = np.asarray(x_train * 1e6, dtype=np.float32)
    x_test = np.asarray(x_test * 1e6, dtype=np.float32)
    builders = network_peers(x_train.shape[1], x_train.shape[2], n_classes, len(y_train))
    out = {}
    for name, build in builders.items():
        with warnings.catch_warnings():
            # braindecode 0.8 announces that its models' LogSoftmax output will go
            warnings.filterwarnings("ignore", message="LogSoftmax final layer")
            set_random_seeds(seed, cuda=False)
            model = build()
        started = time.monotonic()
        model.fit(x_train, y_train)
        seconds = time.monotonic() - started
        out[name] = (np.asarray(model.predict(x_test)), seconds)
    return out


def _network_peers_missing() -> str | None:
    """Why braindecode's networks cannot run here, or None when braindecode imports."""
    try:
        import braindecode  # noqa: F401
        import braindecode.models  # noqa: F401
        import skorch  # noqa: F401
    except ModuleNotFoundError as error:
        return f"braindecode not installed: {error}"
    except Exception as error:  # e.g. OSError: a torchaudio built for CUDA beside CPU torch
        return f"braindecode not importable: {type(error).__name__}: {error}"
    return None


def peer_epochs(path: Path, class_map: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Epochs ``(n_trials, n_channels, n_samples)`` and class indices of one run."""
    import mne

    raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    raw.filter(*BAND_HZ, fir_design="firwin", skip_by_annotation="edge", verbose=False)
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    wanted = {label: event_id[label] for label in class_map}
    epochs = mne.Epochs(
        raw, events, wanted, tmin=EPOCH_S[0], tmax=EPOCH_S[1], baseline=None, preload=True,
        verbose=False,
    )  # fmt: skip
    classes = list(dict.fromkeys(class_map.values()))
    codes = {code: classes.index(class_map[label]) for label, code in wanted.items()}
    return epochs.get_data(copy=False), np.array([codes[c] for c in epochs.events[:, 2]])


def row(metrics: dict, seconds: float, **extra: object) -> dict:
    """One fold's figures from per-trial metrics (:mod:`bci_app.train.metrics`)."""
    return {
        "accuracy": round(metrics["accuracy"], 4),
        "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "kappa": round(metrics["kappa"], 4),
        "n_trials": metrics["n_trials"],
        "train_seconds": round(seconds, 2),
        **extra,
    }


def _ours(name: str, train: TrialWindows, settings: TrainSettings) -> tuple[Decoder, float, dict]:
    """Fit one of our methods on ``train``: (decoder, seconds, extra figures)."""
    started = time.monotonic()
    if name == "auto":
        fitted, report = select_decoder(train, settings)
        return fitted.decoder, time.monotonic() - started, {"chosen": report["chosen"]}
    if name in ABLATION:
        arguments, changes = ABLATION[name]
        fitted = fit_decoder("se", train, settings.model_copy(update=changes), **arguments)
        return fitted.decoder, time.monotonic() - started, {}
    kind = "riemann" if name in (ADAPTATION_OFF, ADAPTED_ELSEWHERE) else name
    fitted = fit_decoder(kind, train, settings, adapt=name != ADAPTATION_OFF)
    return fitted.decoder, time.monotonic() - started, {}


def run_task(
    task: str,
    folder: Path,
    subject: str,
    methods: list[str],
    settings: TrainSettings,
    log: Callable[[str], None],
) -> dict:
    """Every method on every leave-one-run-out fold of ``task``."""
    runs, class_map = TASKS[task]
    files = [folder / f"{subject}R{run}.edf" for run in runs]
    files = [f for f in files if f.is_file()]
    if len(files) < 2:
        raise SystemExit(f"{task}: fewer than two of its runs {runs} under {folder}")
    classes = tuple(dict.fromkeys(class_map.values()))
    config = load_config(CONFIG)
    trials = [extract_trials([load_recording(f)], class_map, config) for f in files]
    epochs_by_run = [peer_epochs(f, class_map) for f in files]
    ours = [m for m in methods if m not in (*PEERS, *NETWORK_PEERS)]
    if len(files) >= 3 and ADAPTATION_OFF in ours:
        ours.append(ADAPTED_ELSEWHERE)
    missing = _network_peers_missing()
    networks = [] if missing else list(NETWORK_PEERS)
    folds: dict[str, list[dict]] = {name: [] for name in [*PEERS, *networks, *ours]}
    for held_out in range(len(files)):
        train_runs = [i for i in range(len(files)) if i != held_out]
        x_train = np.concatenate([epochs_by_run[i][0] for i in train_runs])
        y_train = np.concatenate([epochs_by_run[i][1] for i in train_runs])
        x_test, y_test = epochs_by_run[held_out]
        for name, model in peers().items():
            started = time.monotonic()
            model.fit(x_train, y_train)
            seconds = time.monotonic() - started
            metrics = classification_metrics(y_test, model.predict(x_test), classes)
            folds[name].append(row(metrics, seconds))
        if networks:
            fitted = _fit_network_peers(x_train, y_train, x_test, len(classes), settings.seed)
            for name, (predicted, seconds) in fitted.items():
                metrics = classification_metrics(y_test, predicted, classes)
                folds[name].append(row(metrics, seconds))
        train = TrialWindows.concatenate([trials[i] for i in train_runs])
        for name in ours:
            if name == ADAPTED_ELSEWHERE:
                # train on one run, adapt on another without labels, test on the held-out one
                source, adapt_on = train_runs[0], train_runs[1]
                decoder, seconds, extra = _ours(name, trials[source], settings)
                decoder.reset()
                decoder.predict(trials[adapt_on].x)  # unlabelled: only moves the reference
                metrics = evaluate_trials(decoder, trials[held_out], reset=False)
            else:
                decoder, seconds, extra = _ours(name, train, settings)
                metrics = evaluate_trials(decoder, trials[held_out])
            folds[name].append(row(metrics, seconds, **extra))
        log(
            f"{task}: test {files[held_out].name}: "
            + ", ".join(f"{n} {f[-1]['accuracy']:.3f}" for n, f in folds.items())
        )
    summary = {
        name: {
            "mean_accuracy": round(float(np.mean([f["accuracy"] for f in per_fold])), 4),
            "mean_balanced_accuracy": round(
                float(np.mean([f["balanced_accuracy"] for f in per_fold])), 4
            ),
            "mean_train_seconds": round(float(np.mean([f["train_seconds"] for f in per_fold])), 2),
            "folds": per_fold,
        }
        for name, per_fold in folds.items()
    }
    best_peer = max(PEERS, key=lambda n: summary[n]["mean_accuracy"])
    best = summary[best_peer]["mean_accuracy"]
    result: dict = {
        "runs": [f.name for f in files],
        "chance": 1 / len(classes),
        "methods": summary,
        "best_peer": best_peer,
        "best_network_peer": None,
        "peers_missing": {name: missing for name in NETWORK_PEERS} if missing else {},
    }
    for name in ("se", "auto"):
        if name in summary:
            result[f"{name}_minus_best_peer"] = round(summary[name]["mean_accuracy"] - best, 4)
    if networks:
        best_network = max(networks, key=lambda n: summary[n]["mean_accuracy"])
        result["best_network_peer"] = best_network
        for name in ("se", "auto"):
            if name in summary:
                result[f"{name}_minus_best_network_peer"] = round(
                    summary[name]["mean_accuracy"] - summary[best_network]["mean_accuracy"], 4
                )
    return result


ALL_METHODS = [*NETWORKS, *CLASSICAL, ADAPTATION_OFF, "auto"]
#: ``--timing``: a calibration of this many trials, from the first runs found (15 trials each).
TIMING_TRIALS = 45


def training_seconds(folder: Path, subject: str, settings: TrainSettings) -> dict:
    """Wall seconds to train the SE network, riemann and ``auto`` on 45 trials x 64 channels
    (the first three runs found, T1 / T2 as two classes), one after the other on this machine."""
    files = [folder / f"{subject}R{run}.edf" for _, (runs, _) in TASKS.items() for run in runs]
    files = [f for f in files if f.is_file()][: TIMING_TRIALS // 15]
    config = load_config(CONFIG)
    classes = {"T1": "first", "T2": "second"}
    tw = TrialWindows.concatenate(
        [extract_trials([load_recording(f)], classes, config) for f in files]
    )
    figures: dict = {"runs": [f.name for f in files], "n_trials": tw.n_trials}
    for name in ("se", "riemann", "auto"):
        started = time.monotonic()
        if name == "auto":
            _, report = select_decoder(tw, settings)
            figures["auto_chosen"] = report["chosen"]
            figures["auto_left_out"] = report["left_out"]
        else:
            fit_decoder(name, tw, settings)
        figures[f"{name}_seconds"] = round(time.monotonic() - started, 2)
    return figures


def main(
    data: Path = DATA,
    subject: str = "S001",
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    epochs: int | None = None,
    seed: int = 0,
    as_json: bool = False,
    ablation: bool = False,
    timing: bool = False,
) -> int:
    """Run the benchmark and print per-fold lines, then (``as_json``) one JSON object;
    ``ablation`` adds the SE recipe's variants (:data:`ABLATION`), ``timing`` the training
    seconds on 45 trials (:func:`training_seconds`)."""
    import mne

    mne.set_log_level("WARNING")
    warnings.filterwarnings("ignore", category=FutureWarning)
    settings = (
        TrainSettings(seed=seed) if epochs is None else TrainSettings(epochs=epochs, seed=seed)
    )
    folder = Path(data) / subject
    result = {
        "subject": subject,
        "protocol": "leave one run out",
        "settings": settings.model_dump(),
        "tasks": {
            task: run_task(
                task,
                folder,
                subject,
                [*(methods or ALL_METHODS), *(ABLATION if ablation else ())],
                settings,
                lambda line: print(line, flush=True),
            )
            for task in tasks or list(TASKS)
        },
    }
    if timing:
        result["training_seconds_45_trials"] = training_seconds(folder, subject, settings)
        print(f"training on 45 trials: {result['training_seconds_45_trials']}", flush=True)
    if as_json:
        print(json.dumps(result))
    return 0
