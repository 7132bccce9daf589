"""``bci-app train``: a checkpoint from recordings with cue markers (or simulated ones)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bci_app.cli._common import (
    add_strict_argument,
    fold_count,
    load_app_config,
    positive_float,
    print_json,
)
from bci_app.config import AUTO_BUDGET_S, DECODER_CHOICES, PARADIGM_CHOICES


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train", help="train a checkpoint from recordings with cue markers"
    )
    parser.add_argument("files", nargs="*", help="EDF/BDF/FIF/XDF recordings")
    parser.add_argument(
        "--classes",
        nargs="+",
        default=[],
        help="event label to class name, e.g. T1:hands T2:feet (LABEL alone means LABEL:LABEL); "
        "SSVEP: rest 13Hz 17Hz 21Hz (<number>Hz is a stimulation frequency); P300: none (the "
        "target/nontarget markers)",
    )
    parser.add_argument(
        "--paradigm",
        default=None,
        choices=PARADIGM_CHOICES,
        help="mi: cue then sliding windows; p300: one epoch per flash (markers code<N>, "
        "target/nontarget, char:<X>); ssvep: windows over the stimulation. Default: the "
        "config's paradigm.kind (mi). p300/ssvep take their own filters, model rate and "
        "windows unless --config sets them",
    )
    parser.add_argument("--out", required=True, help="checkpoint folder to write")
    parser.add_argument(
        "--training-free",
        action="store_true",
        help="SSVEP: a filter-bank CCA model needing no recording (give --channels); "
        "rest is detected by a noise threshold",
    )
    parser.add_argument(
        "--channels", nargs="+", help="--training-free: the electrodes it reads, e.g. O1 Oz O2"
    )
    parser.add_argument("--config", help="config YAML with the dsp and window settings")
    parser.add_argument(
        "--decoder",
        default=None,
        choices=DECODER_CHOICES,
        help="se/eca/cbam: the attention network (any paradigm); motor imagery: riemann "
        "(tangent space + logistic regression), mdm, csp-lda; P300: xdawn-riemann, lda "
        "(shrinkage); SSVEP: fbcca, fb-riemann; auto: chosen on these recordings alone (leave "
        "one run out with two runs or more), ensembles included. Default: se for motor "
        "imagery, auto for P300 and SSVEP",
    )
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        default=AUTO_BUDGET_S,
        help=f"auto: seconds it may take; a network that would not fit is left out (default "
        f"{AUTO_BUDGET_S:g})",
    )
    parser.add_argument(
        "--no-adapt",
        dest="adapt",
        action="store_false",
        help="aligned decoders keep the calibration's reference instead of following the session",
    )
    parser.add_argument("--epochs", type=int, help="network epochs (default: the recipe's 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--early-stopping",
        action="store_true",
        help="network: hold out validation trials and keep the best epoch (default: all trials, "
        "fixed epochs)",
    )
    parser.add_argument("--split", default="trial", choices=["trial", "run"])
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--trial-start", type=float, default=0.0, help="s after the cue")
    parser.add_argument("--trial-stop", type=float, default=4.0, help="s after the cue")
    parser.add_argument("--train-hop", type=positive_float, help="window hop for training (s)")
    parser.add_argument(
        "--cv", type=fold_count, default=0, help="also cross-validate with K >= 2 folds"
    )
    parser.add_argument(
        "--simulated", type=positive_float, help="add simulator recordings of this many seconds"
    )
    parser.add_argument("--simulated-runs", type=int, default=1)
    parser.add_argument("--description", default="", help="text for the model card")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--json", action="store_true", help="last line: metrics as JSON")
    add_strict_argument(parser)
    parser.set_defaults(func=cmd_train)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from bci_app.config import with_paradigm
    from bci_app.io import load_recording
    from bci_app.sources.simulator import SimulatorSettings
    from bci_app.train.commands import simulated_recording, train_command
    from bci_app.train.trainer import TrainSettings

    config = load_app_config(args.config)
    paradigm = args.paradigm or config.paradigm.kind
    if paradigm != "mi" or args.paradigm:
        config = with_paradigm(config, paradigm, keep_set_keys=args.config is not None)
    decoder = args.decoder or ("se" if paradigm == "mi" else "auto")
    if args.training_free:
        from bci_app.train.commands import training_free_command

        if args.files or args.simulated:
            raise SystemExit("bci-app train --training-free learns nothing: drop the recordings")
        metrics = training_free_command(
            args.classes, args.channels or [], Path(args.out), config, args.overwrite,
            args.description,
        )  # fmt: skip
        print(f"saved {args.out}: training-free fbcca on {len(args.channels)} channels")
        if args.json:
            print_json(metrics)
        return 0
    recordings = [load_recording(f, args.strict) for f in args.files]
    if args.simulated:
        sim = SimulatorSettings.from_config(config, paradigm=paradigm)
        recordings += [
            simulated_recording(sim.model_copy(update={"seed": sim.seed + k}), args.simulated)
            for k in range(args.simulated_runs)
        ]
    if not recordings:
        raise SystemExit("bci-app train: give recordings (EDF/BDF/FIF/XDF) or --simulated SECONDS")
    settings = TrainSettings(
        seed=args.seed,
        early_stopping=args.early_stopping,
        split=args.split,
        val_fraction=args.val_fraction,
        **({} if args.epochs is None else {"epochs": args.epochs}),
    )
    metrics = train_command(
        recordings,
        args.classes,
        Path(args.out),
        config,
        decoder=decoder,
        adapt=args.adapt,
        time_budget_s=args.time_budget,
        settings=settings,
        trial_start_s=args.trial_start,
        trial_stop_s=args.trial_stop,
        train_hop_s=args.train_hop,
        cv_folds=args.cv,
        overwrite=args.overwrite,
        progress=not args.json,
        description=args.description,
    )
    held_out = metrics.get("cross_validation") or metrics.get("validation") or {}
    line = f"saved {args.out}: decoder {metrics['decoder']}, {metrics['train_seconds']:.1f} s"
    if held_out:
        line += (
            f"; held-out accuracy {held_out.get('accuracy', float('nan')):.3f} on "
            f"{held_out.get('n_trials', 0)} trials"
        )
    print(line)
    if args.json:
        print_json(metrics)
    return 0
