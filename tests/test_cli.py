import argparse

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


def test_csv_without_label_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,0\n")
    with pytest.raises(SystemExit, match="needs at least one --label"):
        cli.main(["train", "--train-csv", str(tmp_path / "t.csv")])


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
def test_bad_weighting_flags_are_refused(flags, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(["train", "--model", "shared_bottom", "--rows", "200", "--epochs", "1", *flags])


@pytest.mark.parametrize("encoding, expected", [(None, "ple"), ("scalar", "scalar"), ("periodic", "periodic")])
def test_numeric_encoding_flag_reaches_the_spec(tmp_path, capsys, encoding, expected):
    rows = "\n".join(f"{i % 7 * 1.5},{'ab'[i % 2]},{i % 2}" for i in range(60))
    (tmp_path / "t.csv").write_text("x,c,y\n" + rows + "\n")
    args = argparse.Namespace(train_csv=str(tmp_path / "t.csv"), test_csv=None, label=["y"], rows=None, seed=0,
                              embedding_dim=4, numeric_encoding=encoding)
    spec = cli._load(args)[3]
    assert [f.encoding for f in spec.numeric] == [expected]
    with pytest.raises(SystemExit):
        cli.main(["train", "--numeric-encoding", "bins"])
    assert "argument --numeric-encoding: must be one of scalar, ple, periodic, got 'bins'" in capsys.readouterr().err


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


def test_an_lr_patience_not_below_patience_is_refused():
    with pytest.raises(SystemExit, match=r"tfmtl train: convergence_callbacks: lr_patience must be 0 \(fixed rate\) "
                                         r"or between 1 and patience - 1 \(1\), got 2"):
        cli.main(["train", "--model", "shared_bottom", "--rows", "200", "--epochs", "1", "--patience", "2",
                  "--lr-patience", "2"])


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
    with pytest.raises(SystemExit, match=f"tfmtl train: warm start: no trained model at '{tmp_path}/none.keras'"):
        cli.main([*common, "--warm-start", str(tmp_path / "none.keras")])
