"""``python -m pipeline run`` on the user's own CSV: --label, the inferred spec, and one-line user errors."""

import json
import os

import pytest

from pipeline import data
from pipeline.cli import _parser, main
from tests.test_cli import _adult_like
from tfmtl.features import FeatureSpec, InferenceOptions, Label, SpecError


@pytest.fixture
def adult(tmp_path):
    return _adult_like(tmp_path / "adult.csv", rows=120)


def _staged(path, tmp_path):
    return data.stage([path], [], str(tmp_path / "run"))


def test_labels_infer_the_spec_with_hyphenated_columns(adult, tmp_path):
    labels = [Label("income_50k", "income", (">50K",)), Label("good", "stars", ("4", "5"))]
    spec = data.fit_spec(_staged(adult, tmp_path), labels=labels, exclude=["id"],
                         options=InferenceOptions(embedding_dim=3))
    assert spec.labels == (Label("income_50k", "income", (">50K",)), Label("good", "stars", (4, 5)))
    assert set(spec.feature_names) == {"age", "education-num", "capital-gain", "work-class"}
    assert {feature.embedding_dim for feature in spec.features} == {3}


def test_non_census_data_without_labels_names_the_flags(adult, tmp_path):
    with pytest.raises(SpecError, match="the data is not census data: name its labels with --label NAME=COLUMN:"
                                        "POSITIVE,... .*or pass --spec"):
        data.fit_spec(_staged(adult, tmp_path))


def test_a_spec_file_and_labels_are_one_choice(adult, tmp_path):
    spec_path = tmp_path / "spec.json"
    FeatureSpec.from_dataframe(data.read_frame(adult), labels=[Label("good", "stars", (4, 5))]).save(spec_path)
    assert data.fit_spec(_staged(adult, tmp_path), str(spec_path)).label_names == ["good"]
    with pytest.raises(SpecError, match="give --label or --spec, not both"):
        data.fit_spec(_staged(adult, tmp_path), str(spec_path), labels=[Label("x")])


def test_census_data_keeps_its_spec_with_the_width_chosen(tmp_path):
    from tfmtl.datasets import census

    path = tmp_path / "census.csv"
    census.read_census_csv(os.path.join(census.DATA_DIR, "train.csv.gz"), nrows=200).to_csv(path, index=False)
    spec = data.fit_spec(_staged(str(path), tmp_path), options=census.CENSUS_INFERENCE.replace(embedding_dim=6))
    assert spec.label_names == [label.name for label in census.LABELS]
    assert {feature.embedding_dim for feature in spec.features} == {6}
    with pytest.raises(SpecError, match="--exclude is for the spec inferred with --label"):
        data.fit_spec(_staged(str(path), tmp_path), exclude=["age"])


def test_inference_flags_change_only_what_was_chosen():
    from tfmtl import arguments
    from tfmtl.datasets import census

    args = _parser().parse_args(["run", "--label", "x=c:>50K,>50K.", "--exclude", "id", "--exclude", "fnlwgt"])
    assert args.label == [Label("x", "c", (">50K", ">50K."))] and args.exclude == ["id", "fnlwgt"]
    assert arguments.inference_options(args, data.inference_defaults(args.label)) == InferenceOptions()
    args = _parser().parse_args(["run", "--embedding-dim", "8", "--numeric-encoding", "scalar",
                                 "--numeric-buckets", "3"])
    chosen = arguments.inference_options(args, data.inference_defaults(()))
    # Without --label the data is census: its own width and bins, changed only by the flags given.
    assert chosen == InferenceOptions(embedding_dim=8, numeric_bins=census.CENSUS_INFERENCE.numeric_bins,
                                      numeric_encoding="scalar", numeric_buckets=3)


@pytest.mark.parametrize("flags, message", [
    (["--label", "=x"], "argument --label: '=x': the label name is empty"),
    (["--numeric-encoding", "bins"], "argument --numeric-encoding: the encoding must be one of"),
    (["--model-kwargs", "{bad"], "argument --model-kwargs: not JSON"),
])
def test_malformed_flags_are_usage_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        _parser().parse_args(["run", *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    ([], "the data is not census data: name its labels with --label"),
    (["--label", "x=nope:1"], "label 'x': column 'nope' is not in the data"),
    (["--label", "x=income:>90K"], "label 'x': column 'income' has no positive values ('>90K')"),
    (["--label", "x=stars:four"], "label 'x': column 'stars' is numeric (int64), got positive value 'four'"),
    (["--label", "income"], "label 'income': column 'income' must hold 0/1 values"),
    (["--spec", "{tmp}/none.json"], "No such file or directory: {tmp}/none.json"),
    (["--data", "{tmp}/none.csv", "--label", "x"], "no input data at '{tmp}/none.csv'"),
])
def test_user_errors_are_one_line_and_exit_2(flags, message, adult, tmp_path, capfd):
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    code = main(["run", "--data", adult, "--run-dir", str(tmp_path / "run"), *flags])
    err = capfd.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == [err.splitlines()[0]] and err.startswith("tfmtl-pipeline: error: ")
    assert message.format(tmp=tmp_path) in err


@pytest.mark.slow
def test_run_on_an_adult_like_csv_with_string_labels(adult, tmp_path, capfd):
    """The whole pipeline on hyphenated columns, a '>50K' label and a 1-5 stars label: every component runs."""
    run_dir, summary = tmp_path / "run", tmp_path / "summary.json"
    data_path = _adult_like(tmp_path / "adult300.csv", rows=300)
    code = main(["run", "--data", data_path, "--label", "income_50k=income:>50K", "--label", "good=stars:4,5",
                 "--exclude", "id", "--rows", "300", "--epochs", "1", "--run-dir", str(run_dir),
                 "--beam-mode", "in_memory", "--json", str(summary)])
    out = capfd.readouterr().out
    assert code == 0, out
    assert f"saved to {run_dir / 'spec.json'}" in out
    spec = FeatureSpec.load(run_dir / "spec.json")
    assert spec.labels == (Label("income_50k", "income", (">50K",)), Label("good", "stars", (4, 5)))
    assert "education-num" in spec.feature_names and "id" not in spec.feature_names
    with open(summary) as f:
        states = {c["component"]: c["state"] for c in json.load(f)["components"]}
    assert {states[name] for name in ("Transform", "Trainer", "Evaluator")} == {"done"}
    assert os.path.isdir(run_dir / "logs")
