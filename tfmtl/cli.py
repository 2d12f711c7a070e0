"""``tfmtl``: train any registered model with ``model.fit`` and print per-task test AUC.

    tfmtl train --model mmoe                                  # bundled census data, to convergence
    tfmtl train --model ple --rows 20000 --output ple.keras --model-args '{"num_levels": 1}'
    tfmtl train --model shared_bottom --train-csv tr.csv --test-csv te.csv --label clicked --label bought
    tfmtl train --train-csv adult.csv --label 'income_50k=income:>50K,>50K.' --exclude fnlwgt --output m.keras
    tfmtl train --train-csv next.csv --spec m.spec.json                      # the spec the first run saved
    tfmtl train --model mmoe --weighting pid --accuracy-objective income_50k --pid-set-point 0.3
    tfmtl models                                              # list model names
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import pandas as pd

from tfmtl import arguments
from tfmtl.logs import capture_output, silence_known_noise


def _convergence_options(args) -> dict:
    # Only what the user chose: the defaults stay in TrainingRun (0 switches the rate cut or the averaging off).
    chosen = {"patience": args.patience, "lr_patience": args.lr_patience, "weight_averaging": args.weight_averaging,
              "monitor": args.monitor}
    return {name: value for name, value in chosen.items() if value is not None}


def _load(args):
    """Train, validation and test rows and their spec: --spec's, inferred from --train-csv, or census'."""
    from tfmtl.datasets import census
    from tfmtl.errors import UsageError
    from tfmtl.features import FeatureSpec, InferenceOptions, typed_labels

    if not args.train_csv:
        if args.spec or args.label or args.test_csv or args.exclude:
            raise UsageError("--spec, --label, --exclude and --test-csv are for your own data: give --train-csv too")
        splits = census.load_census(nrows=args.rows, options=arguments.inference_options(args, census.CENSUS_INFERENCE))
        return splits.train, splits.validation, splits.test, splits.spec
    if args.spec and args.label:
        raise UsageError("--spec already names the labels: give --label or --spec, not both")
    if not args.spec and not args.label:
        raise UsageError("--train-csv needs a --label per task (NAME, NAME=COLUMN or NAME=COLUMN:POSITIVE,...) "
                         "or a --spec saved by an earlier run")
    train = _read_csv(args.train_csv, args.rows)
    if args.test_csv:
        test = _read_csv(args.test_csv, args.rows)
    else:
        test = train.sample(frac=0.2, random_state=1)
        train = train.drop(test.index)
    # Early stopping watches a validation slice of the training rows, never the test rows.
    validation = train.sample(frac=0.1, random_state=args.seed)
    train = train.drop(validation.index)
    if args.spec:
        try:
            spec = FeatureSpec.load(args.spec)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise UsageError(f"--spec {args.spec} is not a FeatureSpec JSON file ({error!r})") from error
        spec.check_dataframe(train, require_labels=spec.label_names)
        return train, validation, test, spec
    spec = FeatureSpec.from_dataframe(train, labels=typed_labels(args.label, train), exclude=args.exclude or (),
                                      options=arguments.inference_options(args, InferenceOptions()))
    spec_path = _spec_path(args)
    spec.save(spec_path)
    print(f"spec inferred from {len(train):,} rows saved to {spec_path} (reuse it with --spec {spec_path})")
    if spec.inference_report is not None and spec.inference_report.tables:
        print(f"id spaces chosen by inference:\n{spec.inference_report}")
    return train, validation, test, spec


def _read_csv(path: str, rows: int | None) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, nrows=rows)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        # pandas' message does not name the file
        raise pd.errors.ParserError(f"cannot read {path} as CSV: {error}") from error
    if frame.empty:
        raise pd.errors.EmptyDataError(f"{path} has a header but no rows")
    return frame


def _spec_path(args) -> str:
    """Beside the saved model (model.keras -> model.spec.json), else beside the log."""
    return os.path.splitext(args.output or args.log_path)[0] + ".spec.json"


def train(args) -> dict:
    from sklearn.metrics import roc_auc_score

    from tfmtl.training import grown_spec, load_for_warm_start

    train_df, validation_df, test_df, spec = _load(args)
    run = _training_run(args)
    try:  # the model's arguments, the weighting's and the warm start's are the user's choices
        if run.warm_start and not getattr(args, "spec", None):
            # Known values keep their ids (and so their trained rows); values new in these rows get new ids.
            spec = grown_spec(load_for_warm_start(run.warm_start).spec, train_df)
        model = run.build(spec)
    except ValueError as error:
        raise SystemExit(f"tfmtl train: {error}") from error
    print(f"{run.describe(model)}; training on {len(train_df):,} rows", flush=True)
    # Train to convergence: cut the learning rate when the validation AUC stalls, stop when it has not
    # improved for --patience epochs and keep the best epoch's weights; --epochs is only a cap.
    report = run.fit(model, train_df, validation_df, evaluate=False)
    if report.warm_start is not None:
        grown = {name: count for name, count in report.warm_start.new.items() if count}
        print(f"warm start from {run.warm_start}: {sum(report.warm_start.carried.values()):,} embedding rows "
              f"carried, new rows for {grown or 'no feature'}")
    monitored = report.history.get(run.monitor)
    kept = f" ({run.monitor} {monitored[report.best_epoch - 1]:.4f})" if monitored else ""
    print(f"best epoch {report.best_epoch} of {report.epochs_run}{kept}; its weights are kept")
    predictions = model.predict(test_df, verbose=0)
    aucs = {}
    for output, label in run.output_labels(spec).items():
        aucs[output] = float(roc_auc_score(spec.label_array(test_df, label).ravel(), predictions[output].ravel()))
    for output, auc in aucs.items():
        print(f"test AUC {output}: {auc:.4f}")
    print(f"trained in {report.seconds:.0f}s ({report.examples_per_second:,.0f} examples/s)")
    if args.output:
        model.save(args.output)
        print(f"saved {args.output}")
    return aucs


def _training_run(args):
    """The run the flags describe: only what was chosen, every default is :class:`tfmtl.training.TrainingRun`'s."""
    from tfmtl.training import TrainingRun

    weighting_args = _weighting_args(args)
    if args.accuracy_objective is not None:
        weighting_args["accuracy_objective"] = args.accuracy_objective
    chosen = {"tasks": args.tasks, "epochs": args.epochs, "batch_size": args.batch_size,
              "learning_rate": args.learning_rate, "seed": args.seed, "warm_start": args.warm_start,
              **_convergence_options(args)}
    try:
        return TrainingRun(args.model, args.model_args, weighting=args.weighting,
                           weighting_args=weighting_args,
                           **{name: value for name, value in chosen.items() if value is not None})
    except ValueError as error:
        raise SystemExit(f"tfmtl train: {error}") from error


def _weighting_args(args) -> dict:
    """The CLI's weighting flags as :func:`tfmtl.training.make_weighting` arguments (only those given)."""
    given = {"weights": json.loads(args.loss_weights) if args.loss_weights else None, "set_point": args.pid_set_point,
             "kp": args.pid_kp, "ki": args.pid_ki, "kd": args.pid_kd, "auxiliary_scale": args.auxiliary_scale}
    return {name: value for name, value in given.items() if value is not None}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfmtl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("train", help="train a model with model.fit and report test AUC")
    fit.add_argument("--model", default="mmoe", help="registered model name (see `tfmtl models`)")
    fit.add_argument("--model-args", type=arguments.json_object, default={},
                     help="JSON keyword arguments for the model")
    fit.add_argument("--tasks", nargs="+", default=None, help="label names to train (default: all)")
    fit.add_argument("--rows", type=int, default=None, help="read only the first rows of each file")
    fit.add_argument("--train-csv", default=None, help="your own training CSV (default: bundled census)")
    fit.add_argument("--test-csv", default=None)
    fit.add_argument("--label", action="append", type=arguments.label, metavar="NAME[=COLUMN[:POSITIVE,...]]",
                     help="a task of --train-csv (repeatable): NAME is a 0/1 column, NAME=COLUMN reads a 0/1 column, "
                          "NAME=COLUMN:POS1,POS2 is 1 where COLUMN holds one of those values (e.g. "
                          "income_50k=income:>50K,>50K.; a ',' inside a value is '\\,')")
    fit.add_argument("--spec", default=None, metavar="SPEC.json",
                     help="the FeatureSpec of an earlier run (each run saves the one it inferred) instead of "
                          "inferring one from --train-csv")
    fit.add_argument("--exclude", action="append", default=None, metavar="COLUMN",
                     help="a column of --train-csv that is not a feature (ids, leaky columns; repeatable)")
    fit.add_argument("--epochs", type=int, default=None,
                     help="epoch cap; training stops earlier when the validation AUC (--monitor) stops improving "
                          "(default: tfmtl.training.TrainingRun's)")
    fit.add_argument("--patience", type=int, default=None,
                     help="epochs without validation improvement before stopping "
                          "(default: tfmtl.training.convergence_callbacks')")
    fit.add_argument("--lr-patience", type=int, default=None,
                     help="epochs without validation improvement before the learning rate is cut, 0: never "
                          "(default: tfmtl.training.convergence_callbacks')")
    fit.add_argument("--weight-averaging", type=float, default=None,
                     help="decay of the running weight average that is validated and kept, 0: none "
                          "(default: tfmtl.training.convergence_callbacks')")
    fit.add_argument("--monitor", choices=("val_auc", "val_loss"), default=None,  # convergence.MONITORS
                     help="what decides the cut and the stop: the mean validation AUC of the tasks, or the "
                          "validation loss (default: tfmtl.training.convergence_callbacks', val_auc)")
    fit.add_argument("--batch-size", type=int, default=None, help="default: TrainingRun's")
    fit.add_argument("--learning-rate", type=float, default=None, help="Adam's (default: TrainingRun's)")
    fit.add_argument("--embedding-dim", type=int, default=None,
                     help="width of every field (default: tfmtl.features.InferenceOptions'; census: its own)")
    fit.add_argument("--numeric-encoding", type=arguments.numeric_encoding, default=None,
                     help="how numeric columns are embedded: scalar, ple or periodic "
                          "(default: tfmtl.features.InferenceOptions')")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--output", default=None, help="save the trained model as a .keras file")
    fit.add_argument("--warm-start", default=None, metavar="MODEL.keras",
                     help="start from a trained model's weights: its vocabularies grow by the new rows' values, "
                          "known values keep their embedding rows, new ones start from the initializer")
    fit.add_argument("--log", default=None, help="TensorFlow's own log output goes here "
                                                 "(default: tfmtl-runs/logs/train-<time>.log)")
    weighting = fit.add_argument_group("loss weighting (tfmtl.training.with_weighting)")
    weighting.add_argument("--weighting", default="none",
                           help="none (Keras' compiled losses), static, uncertainty or pid: a MultiObjectiveModel "
                                "with that weighting")
    weighting.add_argument("--accuracy-objective", default=None, help="the output a PID controller watches")
    weighting.add_argument("--loss-weights", default=None,
                           help='JSON {output: weight}: static weights, or the PID preferences of the other outputs')
    weighting.add_argument("--pid-set-point", type=float, default=None, help="pid: the accuracy loss to hold")
    weighting.add_argument("--pid-kp", type=float, default=None)
    weighting.add_argument("--pid-ki", type=float, default=None)
    weighting.add_argument("--pid-kd", type=float, default=None)
    weighting.add_argument("--auxiliary-scale", type=float, default=None, help="pid: MoRec's lambda")
    commands.add_parser("models", help="list registered model names")
    return parser


def main(argv=None) -> int:
    """Runs a command. A user's mistake prints one line and exits 2; a fault prints one line and exits 1,
    its traceback kept in the log."""
    args = _parser().parse_args(argv)
    silence_known_noise()
    if args.command == "models":
        from tfmtl.models import available_models

        print("\n".join(available_models()))
        return 0
    # Python output (progress, AUCs) stays on the terminal; TensorFlow's C++ and logging output goes to the log.
    args.log_path = args.log or os.path.join("tfmtl-runs", "logs", time.strftime("train-%Y%m%d-%H%M%S.log"))
    print(f"full log: {args.log_path}", flush=True)
    from tfmtl.errors import FAULT_STATUS, USAGE_STATUS, one_line, user_error_types

    failure = None
    with capture_output(args.log_path) as console, contextlib.redirect_stdout(console):
        try:
            train(args)
        except user_error_types() as error:
            failure = USAGE_STATUS, one_line(error)
        except SystemExit as error:  # raised with a message by the run's own checks (a bad model name, ...)
            if not isinstance(error.code, str):
                raise
            failure = USAGE_STATUS, one_line(SystemExit(error.code.removeprefix("tfmtl train: ")))
        except Exception as error:  # a fault: the traceback goes to the log, one line to the terminal
            import traceback

            traceback.print_exc()
            failure = FAULT_STATUS, f"{type(error).__name__}: {one_line(error)} (traceback in {args.log_path})"
    if failure:
        status, message = failure
        print(f"tfmtl train: error: {message}", file=sys.stderr)
        return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
