import pytest

from tfmtl import cli


def test_train_prints_aucs_and_saves(tmp_path, capfd):
    out, log = tmp_path / "m.keras", tmp_path / "train.log"
    assert cli.main(["train", "--model", "shared_bottom", "--rows", "3000", "--epochs", "1", "--log", str(log),
                     "--model-args", '{"bottom_units": [16], "tower_units": [8]}', "--output", str(out)]) == 0
    terminal = capfd.readouterr()
    assert "test AUC income_50k: 0." in terminal.out and "test AUC never_married: 0." in terminal.out
    assert f"full log: {log}" in terminal.out and terminal.err == ""
    assert out.exists() and log.exists()


def test_models_lists_registry(capsys):
    cli.main(["models"])
    assert "mmoe" in capsys.readouterr().out.split()


def test_csv_without_label_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,0\n")
    with pytest.raises(SystemExit, match="needs at least one --label"):
        cli.main(["train", "--train-csv", str(tmp_path / "t.csv")])
