"""``tfmtl-pipeline`` / ``python -m pipeline``: run the TFX pipeline locally, compile it for Vertex, summarise runs.

Examples::

    python -m pipeline run --model mmoe --rows 2000 --epochs 1 --serving-dir /tmp/serving
    python -m pipeline run --model ple --data data/ --eval-data eval/ --spec spec.json --run-dir runs/ple
    python -m pipeline run --data adult.csv --label 'income_50k=income:>50K,>50K.' --exclude fnlwgt
    python -m pipeline compile --output tfmtl.json --pipeline-root gs://b/root --data gs://b/census \\
        --serving-dir gs://b/serving --spec spec.json --image gcr.io/p/tfmtl:1
    python -m pipeline summary --run-dir tfmtl-runs/tfmtl-mmoe
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence

from tfmtl import arguments  # light: the types import the library only when their flag is given

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfmtl", "datasets", "data",
                            "census")
DEFAULT_SLICE = "sex"  # census


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "max_trials", None) is not None and getattr(args, "search", None) is None:
        parser.error("--max-trials is the number of Tuner trials: give --search too")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tfmtl.logs import silence_known_noise

    silence_known_noise()
    from tfmtl.errors import USAGE_STATUS, one_line

    try:
        return args.command(args)
    except _user_errors() as error:  # the user's mistake: one line, no traceback
        print(f"{parser.prog}: error: {one_line(error)}", file=sys.stderr)
        return USAGE_STATUS
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _user_errors() -> tuple[type[BaseException], ...]:
    """The user's mistakes (tfmtl's, and a bad span choice): one line on the terminal, exit 2."""
    from pipeline.spans import SpanError
    from tfmtl.errors import user_error_types

    return (*user_error_types(), SpanError)


# ------------------------------------------------------------------ commands
def _run(args: argparse.Namespace) -> int:
    name = args.pipeline_name or f"tfmtl-{args.model.replace('_', '-')}"
    run_dir = os.path.abspath(args.run_dir or os.path.join("tfmtl-runs", name))
    if args.verbose:
        return _run_pipeline(args, name, run_dir, _say)
    from tfmtl.logs import capture_output, log_tail

    # TensorFlow, Beam and TFX logs (and the Beam workers' output) go to the file; progress to the terminal.
    log_path = os.path.join(run_dir, "logs", time.strftime("pipeline-%Y%m%d-%H%M%S.log"))
    _say(f"full log: {log_path}")
    with capture_output(log_path) as console:
        def say(text: str) -> None:
            print(text, file=console, flush=True)

        try:
            status = _run_pipeline(args, name, run_dir, say)
        except _user_errors() as error:  # main() reports a user's mistake as one line, without the log's tail
            user_error = error
        else:
            user_error = None
        if user_error is None and status:
            say(f"--- last lines of the log ---\n{log_tail(log_path)}--- full log: {log_path}")
    if user_error is not None:
        raise user_error
    return status


def _run_pipeline(args: argparse.Namespace, name: str, run_dir: str, say) -> int:
    from pipeline import data, runner
    from pipeline.gates import DataValidationError
    from pipeline.summary import summarize

    staged, grown = _stage_input(args, run_dir)
    labels = args.label or ()
    options = arguments.inference_options(args, data.inference_defaults(labels))
    spec = grown or data.fit_spec(staged, args.spec, labels=labels, exclude=args.exclude, options=options)
    spec.save(os.path.join(run_dir, "spec.json"))
    if not args.spec and not grown:
        say(f"spec fitted on the train rows saved to {os.path.join(run_dir, 'spec.json')} (labels "
            f"{', '.join(spec.label_names)}; reuse it with --spec)")
    slices = args.slice if args.slice is not None else [s for s in [DEFAULT_SLICE] if s in spec.feature_names]
    beam = _beam_args(args) or runner.direct_runner_args(args.beam_mode, args.beam_workers)
    pipeline = _create(args, name, runner.pipeline_root(run_dir), staged.root, spec, staged.data_format,
                       staged.train_pattern, staged.eval_pattern, slices, beam,
                       metadata_connection_config=runner.metadata_config(run_dir))
    say(f"pipeline {name}: {len(staged.train_files)} train file(s), format {staged.data_format}, "
        f"rows {args.rows or 'all'}, model {args.model}; run directory {run_dir}")
    start = time.monotonic()
    failure = None
    try:
        runner.run_local(pipeline, progress=None if args.verbose else say)
    except DataValidationError as error:
        failure = str(error)
    except Exception as error:  # a component failed: say which, after the summary
        if args.verbose:
            raise
        traceback.print_exc()  # into the log
        failure = f"{type(error).__name__}: {error}"
    summary = summarize(runner.metadata_path(run_dir), name)
    say(f"finished in {time.monotonic() - start:.1f} s\n{summary.format()}")
    if args.json:  # written aside, then renamed: a reader never sees half a file
        partial = f"{args.json}.partial"
        with open(partial, "w") as f:
            json.dump({**summary.to_dict(), "run_dir": run_dir, "failure": failure}, f, indent=1, allow_nan=False)
        os.replace(partial, args.json)
    if failure:
        say(f"FAILED: {failure}")
        return 1
    return 0


def _compile(args: argparse.Namespace) -> int:
    from pipeline import kubeflow
    from tfmtl.features import FeatureSpec

    name = args.pipeline_name or f"tfmtl-{args.model.replace('_', '-')}"
    spec = FeatureSpec.load(args.spec)
    data_format = args.format or "csv"
    pipeline = _create(args, name, args.pipeline_root, args.data, spec, data_format, args.train_pattern,
                       args.eval_pattern, args.slice or [], _beam_args(args))
    kubeflow.compile_pipeline(pipeline, args.output, args.image)
    _say(f"wrote {args.output}: pipeline {name}, components {', '.join(c.id for c in pipeline.components)}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from pipeline import runner
    from pipeline.summary import summarize

    name = args.pipeline_name or os.path.basename(os.path.abspath(args.run_dir))
    summary = summarize(runner.metadata_path(args.run_dir), name)
    print(json.dumps(summary.to_dict(), indent=1) if args.json else summary.format())
    return 0


# ------------------------------------------------------------------ helpers
def _stage_input(args: argparse.Namespace, run_dir: str):
    """The staged input, and for the next span of a warm-started run the last run's spec grown over its train rows
    (``None`` otherwise: the spec is fitted or loaded as for any run)."""
    import pandas as pd

    from pipeline import data, spans

    if args.train_pattern is None and args.eval_pattern is None:
        spans.check_span_choice(args.span, args.span_range, span_patterns=False)
        train_files, eval_files = data.find_splits(args.data, args.eval_data)
        return data.stage(train_files, eval_files, run_dir, rows=args.rows), None
    if not spans.check_patterns(args.train_pattern, args.eval_pattern):
        raise spans.SpanError(f"run: --train-pattern and --eval-pattern are for span input and need "
                              f"{spans.SPAN_SPEC}; give fixed files with --data and --eval-data")
    if args.eval_data:
        raise spans.SpanError("give --eval-data or span patterns (--train-pattern/--eval-pattern), not both")
    spans.check_span_choice(args.span, args.span_range, span_patterns=True)
    staged = data.stage_spans(args.data, args.train_pattern, args.eval_pattern, run_dir, rows=args.rows,
                              span=spans.ingested_span(args.span, args.span_range))
    previous = os.path.join(run_dir, "spec.json")
    if args.spec or args.warm_start is False or not os.path.isfile(previous):
        return staged, None
    rows = pd.concat([data.read_frame(path) for path in staged.train_files], ignore_index=True)
    return staged, spans.next_spec(previous, rows)


def _create(args, name, root, data_root, spec, data_format, train_pattern, eval_pattern, slices, beam,
            metadata_connection_config=None):
    from pipeline.config import TrainingConfig
    from pipeline.pipeline import create_pipeline

    # Only what was chosen: every default is TrainingRun's (tfmtl.training), as in `tfmtl train`.
    chosen = {"epochs": args.epochs, "patience": args.patience, "lr_patience": args.lr_patience,
              "batch_size": args.batch_size, "learning_rate": args.learning_rate, "seed": args.seed,
              "monitor": args.monitor, "weight_averaging": args.weight_averaging}
    training = TrainingConfig(
        model=args.model, model_kwargs=args.model_kwargs,
        tasks=args.tasks.split(",") if args.tasks else None,
        distribution=args.distribution, mixed_precision=args.mixed_precision,
        **{name: value for name, value in chosen.items() if value is not None})
    search = None
    if args.search is not None:
        from tfmtl.training.tuning import HyperparameterSearch

        search = HyperparameterSearch(args.search, **({} if args.max_trials is None else
                                                      {"max_trials": args.max_trials}))
    return create_pipeline(
        name, root, data_root, spec, args.serving_dir or os.path.join(os.path.dirname(root), "serving"),
        training=training, search=search, data_format=data_format, train_pattern=train_pattern,
        eval_pattern=eval_pattern,
        span=args.span, span_range=args.span_range, warm_start=args.warm_start,
        schema_path=args.schema, statistics=args.statistics, train_steps=args.train_steps, eval_steps=args.eval_steps,
        slice_features=slices, group_feature=args.group_feature, min_auc=args.min_auc,
        max_auc_drop=args.max_auc_drop, model_name=args.model_name,
        metadata_connection_config=metadata_connection_config, beam_pipeline_args=beam,
        enable_cache=not args.no_cache)


def _beam_args(args) -> list[str]:
    from pipeline import kubeflow

    if args.beam_runner == "direct" and not args.beam_arg:
        return []
    return kubeflow.beam_args(args.beam_runner, args.beam_arg or [])


def _say(text: str) -> None:
    print(text, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfmtl-pipeline", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(required=True, metavar="{run,compile,summary}")

    run = commands.add_parser("run", help="run the pipeline locally (LocalDagRunner, SQLite MLMD, Beam DirectRunner)")
    run.set_defaults(command=_run)
    run.add_argument("--data", default=DEFAULT_DATA,
                     help="train file, directory (train*/test* files inside are the splits) or glob; "
                          "default: the bundled census data")
    run.add_argument("--eval-data", help="eval file/directory/glob (default: test*/eval* next to --data, "
                                         "else a 4:1 hash split)")
    run.add_argument("--rows", type=int, help="use only the first N rows of each file (a quick demo)")
    run.add_argument("--run-dir", help="artefacts, metadata.db and staged data (default: tfmtl-runs/<pipeline name>); "
                                       "re-running with the same directory reuses cached results")
    run.add_argument("--beam-mode", choices=("multi_processing", "multi_threading", "in_memory"),
                     default="multi_processing", help="DirectRunner mode (default: multi_processing)")
    run.add_argument("--beam-workers", type=int, help="DirectRunner workers (default: all cores)")
    run.add_argument("--json", help="also write the run summary as JSON to this file")
    run.add_argument("--verbose", action="store_true", help="show TFX's own logs on the terminal instead of progress "
                                                            "lines (default: they go to <run dir>/logs/)")
    _common(run)
    _inference_flags(run)
    _span_flags(run, patterns=True)

    compile_ = commands.add_parser("compile", help="compile for Kubeflow Pipelines V2 / Vertex AI Pipelines")
    compile_.set_defaults(command=_compile)
    compile_.add_argument("--output", required=True, help="pipeline spec JSON to write")
    compile_.add_argument("--pipeline-root", required=True, help="artefact root, e.g. gs://bucket/root")
    compile_.add_argument("--data", required=True, help="ExampleGen input directory, e.g. gs://bucket/census")
    compile_.add_argument("--format", choices=("csv", "parquet", "tfrecord"), help="input format (default csv)")
    compile_.add_argument("--train-pattern", help="train files under --data (e.g. 'train*'; default: hash split)")
    compile_.add_argument("--eval-pattern", help="eval files under --data (e.g. 'test*')")
    compile_.add_argument("--image", required=True, help="container image with TFX 1.16, tfmtl and pipeline installed")
    _common(compile_, spec_required=True)
    _span_flags(compile_, patterns=False)

    summary = commands.add_parser("summary", help="summarise the latest run in a run directory")
    summary.set_defaults(command=_summary)
    summary.add_argument("--run-dir", required=True)
    summary.add_argument("--pipeline-name", help="default: the run directory's name")
    summary.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _inference_flags(parser: argparse.ArgumentParser) -> None:
    """Your own data: the labels and the options of the spec inferred from the train rows (``run`` only)."""
    group = parser.add_argument_group("your own data (the spec inferred from the train rows, saved as "
                                      "<run dir>/spec.json)")
    group.add_argument("--label", action="append", type=arguments.label, metavar="NAME[=COLUMN[:POSITIVE,...]]",
                       help="a task (repeatable): NAME is a 0/1 column, NAME=COLUMN reads a 0/1 column, "
                            "NAME=COLUMN:POS1,POS2 is 1 where COLUMN holds one of those values (e.g. "
                            "income_50k=income:>50K,>50K.; a ',' inside a value is '\\,'); not with --spec")
    group.add_argument("--exclude", action="append", metavar="COLUMN",
                       help="a column that is not a feature (ids, leaky columns; repeatable)")
    group.add_argument("--embedding-dim", type=int, help="width of every field (default: "
                                                         "tfmtl.features.InferenceOptions'; census: its own)")
    group.add_argument("--numeric-encoding", type=arguments.numeric_encoding,
                       help="how numeric columns are embedded: scalar, ple or periodic "
                            "(default: tfmtl.features.InferenceOptions'; census: its own)")


def _span_flags(parser: argparse.ArgumentParser, patterns: bool) -> None:
    """Daily spans and warm start (``compile`` has its own pattern flags)."""
    group = parser.add_argument_group("spans and warm start")
    if patterns:
        group.add_argument("--train-pattern", help="train files of a span under the --data directory, with {SPAN} "
                                                   "(and {VERSION}), e.g. 'span-{SPAN}/train/*'; read in place "
                                                   "(with --rows: the first rows staged under <run dir>/data)")
        group.add_argument("--eval-pattern", help="eval files of a span, e.g. 'span-{SPAN}/eval/*'")
    group.add_argument("--span", type=int, help="the span to read (default: the latest under --data)")
    group.add_argument("--span-range", type=_span_range, metavar="A:B",
                       help="read span B and train on spans A..B (those earlier runs of this pipeline ingested)")
    group.add_argument("--warm-start", action=argparse.BooleanOptionalAction,
                       help="start the Trainer from the last blessed model when there is one, embedding rows carried "
                            "to the grown vocabularies (the next span's spec grows <run dir>/spec.json); default: "
                            "on for {SPAN} input, off for fixed files (a re-run stays cached)")


def _span_range(text: str) -> tuple[int, int]:
    from pipeline.spans import SpanError, parse_span_range

    try:
        return parse_span_range(text)
    except SpanError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _common(parser: argparse.ArgumentParser, spec_required: bool = False) -> None:
    parser.add_argument("--pipeline-name", help="[a-z0-9-]; default: tfmtl-<model>")
    parser.add_argument("--spec", required=spec_required,
                        help="FeatureSpec JSON (default: inferred from the train rows with --label, or the census "
                             "spec for census data)")
    parser.add_argument("--numeric-buckets", type=int, help="quantile buckets per numeric feature when the spec "
                                                            "is fitted (default: tfmtl.features.InferenceOptions')")
    parser.add_argument("--schema", help="curated schema.pbtxt for ExampleValidator (default: inferred)")
    parser.add_argument("--statistics", choices=("spec", "analyzers"), default="spec",
                        help="vocabularies and normalisation from the spec, or re-estimated by TFT analyzers")
    model = parser.add_argument_group("model and training")
    model.add_argument("--model", default="mmoe", help="registered tfmtl model (mmoe, ple, esmm, fsmd, ...)")
    model.add_argument("--model-kwargs", type=arguments.json_object, default={},
                       help='JSON keyword arguments, e.g. \'{"num_experts": 4}\'')
    model.add_argument("--tasks", help="comma-separated label names (default: all labels; ESMM: click,conversion)")
    model.add_argument("--epochs", type=int,
                       help="epoch cap (early stopping on --monitor; default: tfmtl.training.TrainingRun's)")
    model.add_argument("--patience", type=int, help="epochs without eval improvement before stopping "
                                                    "(0: run every epoch; default: TrainingRun's)")
    model.add_argument("--lr-patience", type=int, help="epochs without eval improvement before the learning rate "
                                                       "is cut (0: never; default: TrainingRun's)")
    model.add_argument("--monitor", choices=("val_auc", "val_loss"),  # tfmtl.training.convergence.MONITORS
                       help="what the learning-rate cut and early stopping decide on: the tasks' mean eval AUC or "
                            "the eval split's loss (default: TrainingRun's)")
    model.add_argument("--weight-averaging", type=float, help="decay of the running weight average that is validated "
                                                              "and kept (0: none; default: TrainingRun's)")
    model.add_argument("--batch-size", type=int, help="per replica (default: TrainingRun's)")
    model.add_argument("--learning-rate", type=float, help="Adam's (default: TrainingRun's)")
    model.add_argument("--train-steps", type=int, help="train steps in total (default: --epochs passes)")
    model.add_argument("--eval-steps", type=int, help="validation steps (default: the whole eval split)")
    model.add_argument("--distribution", choices=("auto", "mirrored", "multi_worker", "parameter_server", "none"),
                       default="auto")  # pipeline.config.DISTRIBUTIONS (importing it here would load TFX to parse)
    model.add_argument("--mixed-precision", choices=("mixed_float16", "mixed_bfloat16"))
    model.add_argument("--seed", type=int, help="default: TrainingRun's")
    model.add_argument("--search", type=arguments.json_object,
                       help='run TFX\'s Tuner before the Trainer over this search space (JSON: run fields or model '
                            'kwargs, e.g. \'{"num_experts": {"values": [2, 4]}, "learning_rate": {"min": 0.0003, '
                            '"max": 0.003, "sampling": "log"}}\'); the Trainer trains with the best trial\'s values')
    model.add_argument("--max-trials", type=int, help="the Tuner's trials (default: HyperparameterSearch's)")
    evaluation = parser.add_argument_group("evaluation and push")
    evaluation.add_argument("--slice", action="append", help="feature to slice the evaluation by (repeatable; "
                                                             "default for census: sex)")
    evaluation.add_argument("--group-feature", help="also report each task's group AUC (gauc: the AUC per value of "
                                                    "this feature, e.g. user_id, weighted by its rows)")
    evaluation.add_argument("--min-auc", type=float, default=0.5, help="every task's AUC must exceed this")
    evaluation.add_argument("--max-auc-drop", type=float, default=0.0,
                            help="allowed AUC drop against the last blessed model")
    evaluation.add_argument("--serving-dir", help="push to <serving-dir>/<model name>/<version> "
                                                  "(default: <run dir>/serving)")
    evaluation.add_argument("--model-name", help="served model name (default: --model)")
    beam = parser.add_argument_group("Beam")
    beam.add_argument("--beam-runner", choices=("direct", "dataflow", "flink", "spark"), default="direct")
    beam.add_argument("--beam-arg", action="append", help="extra Beam option, e.g. --beam-arg=--project=p "
                                                          "(repeatable)")
    parser.add_argument("--no-cache", action="store_true", help="run every component again")


if __name__ == "__main__":
    sys.exit(main())
