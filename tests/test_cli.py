import argparse
import re

import pytest

from tfmtl import cli


def test_train_prints_aucs_and_saves(tmp_path, capfd):
    out, log = tmp_path / "m.keras", tmp_path / "train.log"
    assert cli.main(["train", "--model", "shared_bottom", "--rows", "3000", "--epochs", "1", "--log", str(log),
                     "--model-args", '{"bottom_units": [16], "tower_units": [8]}', "--output", str(out)]) == 0
    terminal = capfd.readouterr()
    assert "test AUC income_50k: 0." in terminal.out and "test AUC never_married: 0." in terminal.out
    assert "best epoch 1 of 1" in terminal.out  # early stopping on the validation split; --epochs is the cap
    assert f"full log: {log}" in terminal.out and terminal.err == ""
    assert out.exists() and log.exists()


def test_models_lists_registry(capsys):
    cli.main(["models"])
    assert "mmoe" in capsys.readouterr().out.split()


def _refused(argv, capfd) -> str:
    """The one line a refused command prints; it exits 2 with no traceback."""
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_csv_without_label_is_refused(tmp_path, capfd):
    (tmp_path / "t.csv").write_text("a,b\n1,0\n")
    line = _refused(["train", "--train-csv", str(tmp_path / "t.csv"), "--log", str(tmp_path / "l.log")], capfd)
    assert line.startswith("tfmtl train: error: --train-csv needs a --label per task")


def test_train_with_pid_weighting(capfd, tmp_path):
    assert cli.main(["train", "--model", "shared_bottom", "--rows", "2000", "--epochs", "1",
                     "--log", str(tmp_path / "train.log"),
                     "--model-args", '{"bottom_units": [8], "tower_units": [4]}', "--weighting", "pid",
                     "--accuracy-objective", "income_50k", "--pid-set-point", "0.3",
                     "--loss-weights", '{"never_married": 1.0}']) == 0
    text = capfd.readouterr().out
    assert "shared_bottom (pid loss weighting)" in text
    assert "q_income_50k" in text and "loss_never_married" in text  # the PID-weighted step ran
    assert "test AUC income_50k: 0." in text and "test AUC never_married: 0." in text


@pytest.mark.parametrize("flags, message", [
    (["--weighting", "bogus"], "weighting must be one of"),
    (["--weighting", "pid"], "needs set_point"),
    (["--weighting", "static", "--loss-weights", '{"nope": 2}'], r"weights name \['nope'\]"),
    (["--weighting", "pid", "--pid-set-point", "0.3", "--accuracy-objective", "nope"], "accuracy_objective 'nope'"),
])
def test_bad_weighting_flags_are_refused(flags, message, capfd, tmp_path):
    line = _refused(["train", "--model", "shared_bottom", "--rows", "200", "--epochs", "1",
                     "--log", str(tmp_path / "l.log"), *flags], capfd)
    assert re.search(message, line) and line.startswith("tfmtl train: error: ")


@pytest.mark.parametrize("encoding, expected", [(None, "ple"), ("scalar", "scalar"), ("periodic", "periodic")])
def test_numeric_encoding_flag_reaches_the_spec(tmp_path, capsys, encoding, expected):
    rows = "\n".join(f"{i % 7 * 1.5},{'ab'[i % 2]},{i % 2}" for i in range(60))
    (tmp_path / "t.csv").write_text("x,c,y\n" + rows + "\n")
    args = argparse.Namespace(train_csv=str(tmp_path / "t.csv"), test_csv=None, label=["y"], rows=None, seed=0,
                              embedding_dim=4, numeric_encoding=encoding, exclude=None, spec=None, output=None,
                              log_path=str(tmp_path / "train.log"))
    spec = cli._load(args)[3]
    assert [f.encoding for f in spec.numeric] == [expected]
    with pytest.raises(SystemExit):
        cli.main(["train", "--numeric-encoding", "bins"])
    expected = "argument --numeric-encoding: the encoding must be one of scalar, ple, periodic, got 'bins'"
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize("patience, lr_patience, averaging, monitor, expected", [
    (None, None, None, None, {}),                                    # convergence_callbacks' own defaults
    (6, None, None, None, {"patience": 6}),
    (3, 0, None, None, {"patience": 3, "lr_patience": 0}),           # 0: the learning rate stays fixed
    (None, 2, 0.0, None, {"lr_patience": 2, "weight_averaging": 0.0}),      # 0: no weight averaging
    (None, None, None, "val_auc", {"monitor": "val_auc"}),
])
def test_convergence_flags_pass_only_what_was_chosen(patience, lr_patience, averaging, monitor, expected):
    args = argparse.Namespace(patience=patience, lr_patience=lr_patience, weight_averaging=averaging,
                              monitor=monitor)
    assert cli._convergence_options(args) == expected


def test_an_lr_patience_not_below_patience_is_refused(capfd, tmp_path):
    line = _refused(["train", "--model", "shared_bottom", "--rows", "200", "--epochs", "1", "--patience", "2",
                     "--lr-patience", "2", "--log", str(tmp_path / "l.log")], capfd)
    assert line == ("tfmtl train: error: convergence_callbacks: lr_patience must be 0 (fixed rate) "
                    "or between 1 and patience - 1 (1), got 2")


@pytest.mark.parametrize("command", [["train"], ["run"]], ids=["tfmtl", "pipeline"])
def test_the_monitor_choices_are_convergence_callbacks(command, capsys):
    from pipeline import cli as pipeline_cli
    from tfmtl.training.convergence import MONITORS

    parser = cli._parser() if command == ["train"] else pipeline_cli._parser()
    for monitor in MONITORS:
        assert parser.parse_args([*command, "--monitor", monitor]).monitor == monitor
    assert parser.parse_args(command).monitor is None  # unset: the library's default (val_auc) applies
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--monitor", "auc"])
    assert "argument --monitor: invalid choice: 'auc'" in capsys.readouterr().err


def test_warm_start_continues_from_a_saved_model(tmp_path, capfd):
    """The next run starts from the last model: known rows carried, the report printed, the same run otherwise."""
    first, second = tmp_path / "first.keras", tmp_path / "second.keras"
    common = ["train", "--model", "shared_bottom", "--rows", "2000", "--epochs", "1", "--log", str(tmp_path / "l.log"),
              "--model-args", '{"bottom_units": [8], "tower_units": [4]}']
    assert cli.main([*common, "--output", str(first)]) == 0
    capfd.readouterr()
    assert cli.main([*common, "--output", str(second), "--warm-start", str(first)]) == 0
    out = capfd.readouterr().out
    assert f"warm-started from {first}" in out and f"warm start from {first}: " in out
    assert "embedding rows carried" in out and second.exists()
    line = _refused([*common, "--warm-start", str(tmp_path / "none.keras")], capfd)
    assert line.startswith(f"tfmtl train: error: warm start: no trained model at '{tmp_path}/none.keras'")


def _adult_like(path, rows: int = 400) -> str:
    """UCI Adult's shape: hyphenated column names, an id, a '<=50K'/'>50K' label and 1-5 stars."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    age, education = rng.integers(18, 70, rows), rng.integers(1, 16, rows)
    gain = rng.integers(0, 5000, rows) * (rng.random(rows) < 0.2)
    score = 0.05 * (age - 40) + 0.3 * (education - 8) + gain / 2000 + rng.normal(0, 1, rows)
    pd.DataFrame({"id": range(rows), "age": age, "education-num": education, "capital-gain": gain,
                  "work-class": rng.choice(["Private", "Self-emp", "Gov"], rows),
                  "income": np.where(score > 0.5, ">50K", "<=50K"),
                  "stars": np.clip(np.round(3 + score), 1, 5).astype(int)}).to_csv(path, index=False)
    return str(path)


def test_own_csv_with_string_and_numeric_labels_and_the_saved_spec_reused(tmp_path, capfd):
    from tfmtl.features import FeatureSpec, Label

    data = _adult_like(tmp_path / "adult.csv")
    common = ["train", "--model", "shared_bottom", "--train-csv", data, "--epochs", "1", "--log",
              str(tmp_path / "l.log"), "--model-args", '{"bottom_units": [8], "tower_units": [4]}']
    assert cli.main([*common, "--label", "income_50k=income:>50K", "--label", "good=stars:4,5", "--exclude", "id",
                     "--output", str(tmp_path / "m.keras")]) == 0
    out = capfd.readouterr().out
    spec_path = tmp_path / "m.spec.json"
    assert f"saved to {spec_path} (reuse it with --spec {spec_path})" in out
    assert "test AUC income_50k: " in out and "test AUC good: " in out
    spec = FeatureSpec.load(spec_path)
    assert spec.labels == (Label("income_50k", "income", (">50K",)), Label("good", "stars", (4, 5)))
    assert set(spec.feature_names) == {"age", "education-num", "capital-gain", "work-class"}  # id excluded
    assert cli.main([*common, "--spec", str(spec_path)]) == 0
    out = capfd.readouterr().out
    assert "spec inferred" not in out and "test AUC good: " in out


@pytest.mark.parametrize("flags, message", [
    (["--train-csv", "{tmp}/none.csv", "--label", "a"], "No such file or directory: {tmp}/none.csv"),
    (["--train-csv", "{tmp}/empty.csv", "--label", "a"], "cannot read {tmp}/empty.csv as CSV: No columns to parse"),
    (["--train-csv", "{tmp}/ragged.csv", "--label", "a"], "cannot read {tmp}/ragged.csv as CSV: Error tokenizing"),
    (["--train-csv", "{tmp}/adult.csv", "--label", "x=nope:1"], "label 'x': column 'nope' is not in the data"),
    (["--train-csv", "{tmp}/adult.csv", "--label", "income"], "label 'income': column 'income' must hold 0/1"),
    (["--train-csv", "{tmp}/adult.csv", "--label", "x=income:>90K"],
     "label 'x': column 'income' has no positive values ('>90K')"),
    (["--train-csv", "{tmp}/adult.csv", "--label", "x=stars:1,2,3,4,5"], "every row of column 'stars' is positive"),
    (["--train-csv", "{tmp}/adult.csv", "--spec", "{tmp}/none.json"], "No such file or directory: {tmp}/none.json"),
    (["--train-csv", "{tmp}/adult.csv", "--spec", "{tmp}/bad.json"],
     "--spec {tmp}/bad.json is not a FeatureSpec JSON file"),
    (["--train-csv", "{tmp}/adult.csv", "--spec", "{tmp}/bad.json", "--label", "a"], "give --label or --spec"),
    (["--train-csv", "{tmp}/adult.csv", "--label", "x=income:>50K", "--model", "nope"], "unknown model 'nope'"),
    (["--label", "a"], "--spec, --label, --exclude and --test-csv are for your own data"),
    (["--exclude", "age"], "give --train-csv too"),
])
def test_user_errors_are_one_line_and_exit_2(flags, message, tmp_path, capfd):
    _adult_like(tmp_path / "adult.csv", rows=50)
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    (tmp_path / "bad.json").write_text("{not json")
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    line = _refused(["train", "--epochs", "1", "--log", str(tmp_path / "l.log"), *flags], capfd)
    assert line.startswith("tfmtl train: error: ") and message.format(tmp=tmp_path) in line


@pytest.mark.parametrize("flags, message", [
    (["--label", "=income"], "argument --label: '=income': the label name is empty"),
    (["--label", "x=income:"], "argument --label: 'x=income:': empty positive value"),
    (["--model-args", "{bad"], "argument --model-args: not JSON"),
    (["--model-args", "[1]"], "argument --model-args: must be a JSON object"),
])
def test_malformed_flags_are_usage_errors(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli._parser().parse_args(["train", *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_fault_is_one_line_with_the_traceback_in_the_log(tmp_path, capfd, monkeypatch):
    log = tmp_path / "l.log"

    def broken(args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "train", broken)
    assert cli.main(["train", "--log", str(log)]) == 1
    err = capfd.readouterr().err
    assert err == f"tfmtl train: error: RuntimeError: disk on fire (traceback in {log})\n"
    assert "Traceback" in log.read_text() and "disk on fire" in log.read_text()
