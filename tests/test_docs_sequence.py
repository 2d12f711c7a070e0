import pathlib
import re

import numpy as np
import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "sequence.md"


def _blocks(doc=DOC):
    return re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)


def _block(containing: str, doc=DOC) -> str:
    """The one Python block of ``doc`` that contains ``containing``."""
    (block,) = [b for b in _blocks(doc) if containing in b]
    return block


@pytest.mark.slow
def test_din_example_runs_and_learns_the_rule(tmp_path):
    namespace = {}
    exec(compile(_block("TargetAttention(units=[16, 8])"), str(DOC), "exec"), namespace)
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
    exec(compile(_block("AITM(spec"), str(DOC), "exec"), namespace)
    assert sorted(namespace["model"].output) == ["ctcvr", "ctr", "cvr"]


def test_list_feature_example_runs():
    namespace = {}
    exec(compile(_block("history_attention="), str(DOC), "exec"), namespace)
    spec, model = namespace["spec"], namespace["model"]
    assert [f.name for f in spec.lists] == ["genres", "history"] and spec.feature("history").shares == "item"
    assert model.get_layer("history_attention") is not None
    assert all(p.shape == (4, 1) for p in namespace["probabilities"].values())


def test_readme_list_feature_snippet_trains_and_exports(tmp_path, monkeypatch):
    readme = DOC.parents[1] / "README.md"
    monkeypatch.chdir(tmp_path)  # the snippet exports under ./serving_models
    namespace = {}
    exec(compile(_block("shared_embeddings=", readme), str(readme), "exec"), namespace)
    assert (tmp_path / "serving_models" / "lists" / "1" / "saved_model.pb").exists()
