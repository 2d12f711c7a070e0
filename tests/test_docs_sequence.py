import pathlib
import re

import numpy as np
import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "sequence.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.slow
def test_din_example_runs_and_learns_the_rule(tmp_path):
    namespace = {}
    exec(compile(_blocks()[0], str(DOC), "exec"), namespace)
    from sklearn.metrics import roc_auc_score

    # Clicked iff the candidate is in the history: attention should find it easily (chance is 0.5).
    assert roc_auc_score(namespace["clicked"], namespace["probabilities"]) > 0.8
    keras, model = namespace["keras"], namespace["model"]
    model.save(tmp_path / "din.keras")
    loaded = keras.models.load_model(tmp_path / "din.keras")
    x = {"history": namespace["ids"][:20], "candidate": namespace["cand"][:20]}
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_aitm_example_runs():
    namespace = {}
    exec(compile(_blocks()[1], str(DOC), "exec"), namespace)
    assert sorted(namespace["model"].output) == ["ctcvr", "ctr", "cvr"]
