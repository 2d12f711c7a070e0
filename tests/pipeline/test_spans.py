"""Daily spans: {SPAN} patterns, the span a run reads, the next span's grown spec, and the pipeline's wiring
(the Trainer's base_model, the ExampleGen's span, the span range) without running TFX."""

import argparse
import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest
from google.protobuf import json_format
from tfx import v1 as tfx
from tfx.dsl.compiler import compiler

from pipeline import data, runner, spans, trainer
from pipeline.cli import _parser, _stage_input, main
from pipeline.pipeline import create_pipeline
from pipeline.spans import SpanError
from pipeline.summary import ComponentRun, RunSummary, open_store
from tests.pipeline.conftest import SMALL_MMOE
from tfmtl.compat import keras
from tfmtl.datasets import census
from tfmtl.features import FeatureSpec, Label
from tfmtl.training import base_model

TRAIN, EVAL = "span-{SPAN}/train/*", "span-{SPAN}/eval/*"


def _write(root, relative: str, text: str = "user,click\na,1\n") -> str:
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


# ------------------------------------------------------------------ patterns
def test_span_patterns_are_checked_together():
    assert spans.check_patterns(TRAIN, EVAL) is True
    assert spans.check_patterns("span-{SPAN:3}/v-{VERSION}/train/*", "span-{SPAN:3}/v-{VERSION}/eval/*") is True
    assert spans.check_patterns("train*", "test*") is False
    assert spans.check_patterns(None, None) is False


@pytest.mark.parametrize("train, eval_, message", [
    (TRAIN, None, "give both --train-pattern and --eval-pattern"),
    (TRAIN, "eval/*", "must both hold {SPAN} or neither"),
    ("span-{SPAN}/{SPAN}/*", EVAL, "more than once"),
    ("v-{VERSION}/train/*", "v-{VERSION}/eval/*", "holds {VERSION} without {SPAN}"),
    ("span-{SPAN}/v-{VERSION}/*", EVAL, "must both hold {VERSION} or neither"),
    ("{YYYY}-{MM}-{DD}/train/*", EVAL, "date placeholders"),
    ("span-{SPAN}/{DAY}/*", EVAL, "unknown placeholder"),
    ("/abs/span-{SPAN}/*", EVAL, "must be relative to --data"),
])
def test_a_bad_pattern_names_the_flag_and_the_problem(train, eval_, message):
    with pytest.raises(SpanError, match=message.replace("{", r"\{").replace("}", r"\}")):
        spans.check_patterns(train, eval_)


def test_span_range_parses_and_rejects_bad_ranges():
    assert spans.parse_span_range("2:5") == (2, 5)
    assert spans.parse_span_range("3:3") == (3, 3)
    for text in ("5:2", "a:b", "3", "1:2:3", "-1:2"):
        with pytest.raises(SpanError, match="--span-range"):
            spans.parse_span_range(text)
    with pytest.raises(SpanError, match="not both"):
        spans.check_span_choice(1, (1, 2), span_patterns=True)
    with pytest.raises(SpanError, match="need --train-pattern and --eval-pattern with"):
        spans.check_span_choice(3, None, span_patterns=False)
    assert spans.ingested_span(None, (2, 5)) == 5 and spans.ingested_span(4, None) == 4
    assert spans.ingested_span(None, None) is None


def test_the_cli_rejects_a_bad_span_range_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["run", "--span-range", "5:2"])
    assert exit_.value.code == 2
    assert "--span-range 5:2: need 0 <= A <= B" in capsys.readouterr().err


# ------------------------------------------------------------------ which span
def test_the_latest_span_is_the_largest_number_and_its_latest_version(tmp_path):
    for span in (1, 2, 10):
        _write(tmp_path, f"span-{span}/train/a.csv")
    assert spans.find_span(str(tmp_path), TRAIN).span == 10  # by number, not by name ("2" > "10")
    chosen = spans.find_span(str(tmp_path), TRAIN, span=2)
    assert (chosen.span, chosen.version, chosen.files) == (2, None, (str(tmp_path / "span-2/train/a.csv"),))
    with pytest.raises(SpanError, match=r"span 3 has no files .* \(spans there: 1, 2, 10\)"):
        spans.find_span(str(tmp_path), TRAIN, span=3)
    with pytest.raises(SpanError, match="no files under"):
        spans.find_span(str(tmp_path), "day-{SPAN}/*")

    for version in (1, 2):
        _write(tmp_path, f"s-04/v-{version}/train/a.csv")
    _write(tmp_path, "s-4/v-9/train/a.csv")  # not two digits wide: {SPAN:2} does not match it
    chosen = spans.find_span(str(tmp_path), "s-{SPAN:2}/v-{VERSION}/train/*")
    assert (chosen.span, chosen.version) == (4, 2)


def test_span_input_is_read_in_place_or_its_first_rows_staged(tmp_path):
    source = tmp_path / "logs"
    rows = "user,click\n" + "".join(f"u{i},{i % 2}\n" for i in range(10))
    for span in (1, 2):
        for split in ("train", "eval"):
            _write(source, f"span-{span}/{split}/part.csv", rows)
    in_place = data.stage_spans(str(source), TRAIN, EVAL, str(tmp_path / "run"))
    assert in_place.root == str(source) and (in_place.train_pattern, in_place.eval_pattern) == (TRAIN, EVAL)
    assert in_place.train_files == (str(source / "span-2/train/part.csv"),) and in_place.data_format == "csv"

    staged = data.stage_spans(str(source), TRAIN, EVAL, str(tmp_path / "run"), rows=3, span=1)
    assert staged.root == str(tmp_path / "run" / "data")
    assert staged.train_files == (str(tmp_path / "run/data/span-1/train/part.csv"),)
    for span in (1, 2):  # every span is staged: a later run with --span-range reads them from the same root
        with open(tmp_path / f"run/data/span-{span}/eval/part.csv") as f:
            assert f.read() == "user,click\nu0,0\nu1,1\nu2,0\n"

    os.remove(source / "span-2/eval/part.csv")
    with pytest.raises(SpanError, match="span 2 has no files matching 'span-{SPAN}/eval/\\*'"):
        data.stage_spans(str(source), TRAIN, EVAL, str(tmp_path / "run"))


# ------------------------------------------------------------------ the next span's spec
def test_the_next_spec_grows_the_last_runs_spec(tmp_path):
    day1 = pd.DataFrame({"user": ["a", "b", "a"], "age": [20.0, 30.0, 40.0], "click": [1, 0, 1]})
    spec = FeatureSpec.from_dataframe(day1, labels=[Label("click")])
    spec.save(str(tmp_path / "spec.json"))
    day2 = pd.DataFrame({"user": ["c", "b", "d", "c"], "age": [99.0] * 4, "click": [0, 1, 1, 0]})
    grown = spans.next_spec(str(tmp_path / "spec.json"), day2)
    # Known values keep their ids; new ones follow, most frequent first.
    assert grown.feature("user").vocabulary == ("a", "b", "c", "d")
    assert grown.feature("age") == spec.feature("age")  # statistics stay the last run's


def test_a_second_span_run_grows_the_spec_saved_by_the_first(tmp_path):
    source, run_dir = tmp_path / "logs", tmp_path / "run"
    _write(source, "span-1/train/part.csv", "user,click\na,1\nb,0\n")
    _write(source, "span-1/eval/part.csv", "user,click\na,1\nb,0\n")
    _write(source, "span-2/train/part.csv", "user,click\nc,1\nb,0\nc,0\n")
    _write(source, "span-2/eval/part.csv", "user,click\nc,1\n")
    os.makedirs(run_dir)
    FeatureSpec.from_dataframe(pd.read_csv(source / "span-1/train/part.csv"),
                               labels=[Label("click")]).save(str(run_dir / "spec.json"))
    args = _parser().parse_args(["run", "--data", str(source), "--train-pattern", TRAIN, "--eval-pattern", EVAL])
    staged, grown = _stage_input(args, str(run_dir))
    assert staged.train_files == (str(source / "span-2/train/part.csv"),)
    assert grown.feature("user").vocabulary == ("a", "b", "c")
    no_warm = _parser().parse_args(["run", "--data", str(source), "--train-pattern", TRAIN, "--eval-pattern", EVAL,
                                    "--no-warm-start"])
    assert _stage_input(no_warm, str(run_dir))[1] is None  # fitted afresh
    fixed = argparse.Namespace(**{**vars(args), "train_pattern": "span-1/train/*", "eval_pattern": "span-1/eval/*"})
    with pytest.raises(SpanError, match="need {SPAN}; give fixed files with --data and --eval-data"):
        _stage_input(fixed, str(run_dir))


# ------------------------------------------------------------------ create_pipeline's wiring
@pytest.fixture(scope="module")
def spec():
    frame = pd.read_csv(os.path.join(census.DATA_DIR, "train.csv.gz"), nrows=200, skipinitialspace=True)
    return census.census_spec(frame)


def _create(spec, tmp_path, **kwargs):
    return create_pipeline("p", str(tmp_path / "root"), str(tmp_path / "data"), spec, str(tmp_path / "serving"),
                           **kwargs)


def _pipeline(spec, tmp_path, **kwargs):
    return {component.id: component for component in _create(spec, tmp_path, **kwargs).components}


def test_span_input_warm_starts_the_trainer_from_the_last_blessed_model(spec, tmp_path):
    components = _pipeline(spec, tmp_path, train_pattern=TRAIN, eval_pattern=EVAL, span=7)
    resolver = components["latest_blessed_model_resolver"]
    assert components["Trainer"].inputs["base_model"] is resolver.outputs["model"]
    assert components["Evaluator"].inputs["baseline_model"] is resolver.outputs["model"]
    gen = components["CsvExampleGen"]
    input_config = json_format.Parse(gen.exec_properties["input_config"], tfx.proto.Input())
    assert [(s.name, s.pattern) for s in input_config.splits] == [("train", TRAIN), ("eval", EVAL)]
    range_config = json_format.Parse(gen.exec_properties["range_config"], tfx.proto.RangeConfig())
    assert (range_config.static_range.start_span_number, range_config.static_range.end_span_number) == (7, 7)
    assert "span_range_resolver" not in components
    assert components["Transform"].inputs["examples"] is gen.outputs["examples"]


def test_the_latest_span_needs_no_range_and_fixed_files_do_not_warm_start(spec, tmp_path):
    latest = _pipeline(spec, tmp_path, train_pattern=TRAIN, eval_pattern=EVAL)
    assert latest["CsvExampleGen"].exec_properties.get("range_config") is None
    assert "base_model" in latest["Trainer"].inputs
    fixed = _pipeline(spec, tmp_path, train_pattern="train/*", eval_pattern="eval/*")
    assert "base_model" not in fixed["Trainer"].inputs  # a re-run of the same files stays cached
    assert "base_model" in _pipeline(spec, tmp_path, warm_start=True)["Trainer"].inputs
    assert "base_model" not in _pipeline(spec, tmp_path, train_pattern=TRAIN, eval_pattern=EVAL,
                                         warm_start=False)["Trainer"].inputs


def test_a_span_range_feeds_the_transform_every_ingested_span_and_evaluates_on_the_newest(spec, tmp_path):
    pipeline = _create(spec, tmp_path, train_pattern=TRAIN, eval_pattern=EVAL, span_range=(3, 5))
    components = {component.id: component for component in pipeline.components}
    gen, resolver = components["CsvExampleGen"], components["span_range_resolver"]
    range_config = json_format.Parse(gen.exec_properties["range_config"], tfx.proto.RangeConfig())
    assert range_config.static_range.start_span_number == 5  # this run ingests the range's last span
    assert components["Transform"].inputs["examples"] is resolver.outputs["examples"]
    assert components["Evaluator"].inputs["examples"] is gen.outputs["examples"]

    nodes = {node.pipeline_node.node_info.id: node.pipeline_node
             for node in compiler.Compiler().compile(pipeline).nodes}
    compiled = nodes["span_range_resolver"]
    assert list(compiled.upstream_nodes) == ["CsvExampleGen"]  # resolved after this run's ExampleGen
    (channel,) = [c for spec_ in compiled.inputs.inputs.values() for c in spec_.channels]
    # Every run's Examples of the ExampleGen (no pipeline_run context), not only this run's.
    assert [(query.type.name, query.name.field_value.string_value) for query in channel.context_queries] == [
        ("pipeline", "p"), ("node", "p.CsvExampleGen")]


def test_create_pipeline_rejects_bad_span_arguments(spec, tmp_path):
    with pytest.raises(SpanError, match="must both hold {SPAN} or neither"):
        _pipeline(spec, tmp_path, train_pattern=TRAIN, eval_pattern="eval/*")
    with pytest.raises(SpanError, match="--span and --span-range need"):
        _pipeline(spec, tmp_path, span=2)
    with pytest.raises(SpanError, match="give both"):
        _pipeline(spec, tmp_path, train_pattern=TRAIN)


# ------------------------------------------------------------------ the summary
def test_the_summary_prints_the_warm_start_and_the_gauc():
    summary = RunSummary("p", "r", [ComponentRun("Trainer", "done", 3.0, {})],
                         {"click": {"auc": 0.75, "gauc": 0.625}}, blessed=True, pushed_to=None,
                         warm_start={"from": "/m/Format-Keras/model.keras", "carried": {"user": 3, "item": 5},
                                     "new": {"user": 1, "item": 0}})
    text = summary.format()
    assert "eval click: auc 0.7500, gauc 0.6250" in text
    assert "warm start: from /m/Format-Keras/model.keras; embedding rows carried/new: item 5/0, user 3/1" in text
    assert summary.to_dict()["warm_start"]["new"] == {"user": 1, "item": 0}
    assert "warm start" not in RunSummary("p", "r", [], {}, None, None).format()


# ------------------------------------------------------------------ two spans through `python -m pipeline run`
SPAN_ROWS, SPAN_EVAL_ROWS = 300, 150


def _census_lines(name: str) -> list[str]:
    with gzip.open(os.path.join(census.DATA_DIR, name), "rt") as f:
        return f.readlines()


def _write_census_spans(root) -> None:
    """Spans 1 and 2: consecutive slices of the census train and test files, their bytes as they are."""
    train, test = _census_lines("train.csv.gz"), _census_lines("test.csv.gz")
    for span in (1, 2):
        for split, lines, rows in (("train", train, SPAN_ROWS), ("eval", test, SPAN_EVAL_ROWS)):
            _write(root, f"span-{span}/{split}/part.csv", "".join([lines[0], *lines[1 + (span - 1) * rows:
                                                                                     1 + span * rows]]))


def _run_span(source, run_dir, *extra) -> dict:
    summary = os.path.join(run_dir, "summary.json")
    code = main(["run", "--data", str(source), "--train-pattern", TRAIN, "--eval-pattern", EVAL,
                 "--run-dir", str(run_dir), "--model-kwargs", json.dumps(SMALL_MMOE), "--batch-size", "64",
                 "--epochs", "1", "--weight-averaging", "0", "--beam-mode", "in_memory", "--json", summary, *extra])
    with open(summary) as f:
        result = json.load(f)
    assert code == 0, result.get("failure")
    return result


def _component(summary, name) -> dict:
    return next(c for c in summary["components"] if c["component"] == name)


def _keras(model_uri: str):
    directory = os.path.join(model_uri, trainer.KERAS_DIR)
    model = keras.models.load_model(os.path.join(directory, trainer.KERAS_MODEL_FILE), compile=False)
    return base_model(model), FeatureSpec.load(os.path.join(directory, trainer.SPEC_FILE))


def _field_rows(model, spec, name: str):
    """The rows of feature ``name`` in the packed field table (fields in spec order, each ``num_ids`` rows)."""
    table = model.get_layer("embedding").embeddings.numpy()
    start = 0
    for feature in spec.fields:
        if feature.name == name:
            return table[start:start + feature.num_ids]
        start += feature.num_ids
    raise KeyError(name)


@pytest.mark.slow
def test_two_spans_in_a_row_warm_start_the_second_model_from_the_first(tmp_path):
    source, run_dir = tmp_path / "logs", tmp_path / "run"
    _write_census_spans(source)
    # Span 1 (named; the latest would be 2): no blessed model yet, so no warm start; blessed on any AUC.
    first = _run_span(source, run_dir, "--span", "1", "--min-auc", "0")
    assert first["blessed"] is True and first["warm_start"] is None
    first_model = _component(first, "Trainer")["outputs"]["model"][0]
    # Span 2 (the latest): warm-started from span 1's blessed model, compared with it, blessed on any drop.
    second = _run_span(source, run_dir, "--min-auc", "0", "--max-auc-drop", "1")
    second_model = _component(second, "Trainer")["outputs"]["model"][0]
    assert second["warm_start"]["from"] == os.path.join(first_model, trainer.KERAS_DIR, trainer.KERAS_MODEL_FILE)
    assert second["blessed"] is True and second["pushed_to"]

    old, old_spec = _keras(first_model)
    new, new_spec = _keras(second_model)
    span2 = pd.read_csv(source / "span-2/train/part.csv", skipinitialspace=True)
    grew = [f for f in new_spec.fields if f.vocabulary and len(f.vocabulary) > len(old_spec.feature(f.name).vocabulary)]
    assert grew, "span 2 brings no new value: pick other rows"
    for feature in grew:
        before = old_spec.feature(feature.name).vocabulary
        assert feature.vocabulary[:len(before)] == before  # known values keep their ids
        assert second["warm_start"]["new"][feature.name] == len(feature.vocabulary) - len(before)
        assert second["warm_start"]["carried"][feature.name] == len(before) + 1  # + the OOV row
        assert len(_field_rows(new, new_spec, feature.name)) == feature.num_ids  # a row per new value
    # A known value that span 2's training rows never show gets no gradient: its row is span 1's row exactly.
    unseen = [(f.name, index + 1) for f in old_spec.fields if f.vocabulary
              for index, value in enumerate(f.vocabulary) if str(value) not in set(span2[f.name].astype(str))]
    assert unseen, "every span-1 value is in span 2: pick other rows"
    for name, row in unseen[:20]:
        np.testing.assert_array_equal(_field_rows(new, new_spec, name)[row], _field_rows(old, old_spec, name)[row])

    # The Evaluator compared the span-2 model with span 1's (the blessed, served one).
    store = open_store(runner.metadata_path(str(run_dir)))
    evaluation = store.get_artifacts_by_uri(_component(second, "Evaluator")["outputs"]["evaluation"][0])[0]
    (evaluator,) = {e.execution_id for e in store.get_events_by_artifact_ids([evaluation.id]) if e.type == e.OUTPUT}
    inputs = {a.id: a.uri for a in store.get_artifacts_by_id(
        [e.artifact_id for e in store.get_events_by_execution_ids([evaluator]) if e.type == e.INPUT])}
    assert first_model in inputs.values() and second_model in inputs.values()
