import pytest

from tfmtl import cli


def test_train_prints_aucs_and_saves(tmp_path, capsys):
    out = tmp_path / "m.keras"
    assert cli.main(["train", "--model", "shared_bottom", "--rows", "3000", "--epochs", "1",
                     "--model-args", '{"bottom_units": [16], "tower_units": [8]}', "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test AUC income_50k: 0." in text and "test AUC never_married: 0." in text
    assert "best epoch 1 of 1" in text  # early stopping on the validation split; --epochs is the cap
    assert out.exists()


def test_models_lists_registry(capsys):
    cli.main(["models"])
    assert "mmoe" in capsys.readouterr().out.split()


def test_csv_without_label_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,0\n")
    with pytest.raises(SystemExit, match="needs at least one --label"):
        cli.main(["train", "--train-csv", str(tmp_path / "t.csv")])
