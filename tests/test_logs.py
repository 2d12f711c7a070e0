import os
import subprocess
import sys
import warnings

import pytest

from tfmtl.logs import capture_output, log_tail, silence_known_noise


def test_library_output_goes_to_the_log_and_progress_to_the_terminal(tmp_path, capfd):
    path = tmp_path / "logs" / "run.log"
    with capture_output(str(path)) as console:
        print("python print")
        os.write(2, b"c++ style write to fd 2\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child process\\n')"], check=True)
        print("progress line", file=console)
    print("after the block")
    log = path.read_text()
    assert log.splitlines() == ["python print", "c++ style write to fd 2", "child process"]
    terminal = capfd.readouterr()
    assert terminal.out == "progress line\nafter the block\n" and terminal.err == ""


def test_an_error_prints_the_log_tail_and_path_and_propagates(tmp_path, capfd):
    path = str(tmp_path / "run.log")
    with pytest.raises(RuntimeError, match="boom"):
        with capture_output(path):
            for i in range(40):
                print(f"line {i}")
            raise RuntimeError("boom")
    err = capfd.readouterr().err
    assert "line 39" in err and "line 9\n" not in err and f"full log: {path}" in err
    assert log_tail(path, 2) == "line 38\nline 39\n" and log_tail(str(tmp_path / "missing.log")) == ""


def test_google_api_core_future_warning_is_filtered_but_others_are_not():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_known_noise()
        warnings.warn_explicit("unsupported Python", FutureWarning, "x.py", 1, module="google.api_core._python")
        warnings.warn_explicit("a real deprecation", FutureWarning, "y.py", 1, module="tfmtl.models")
    assert [str(w.message) for w in caught] == ["a real deprecation"]


def test_import_tfmtl_logs_does_not_load_tensorflow():
    code = "import sys, tfmtl.logs; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
