"""KerasTuner over tfmtl models through ``tfmtl.compat.keras_tuner()``.

Each case runs in a fresh interpreter: KerasTuner picks its Keras once per process, and other tests
(TFX's Tuner) may have imported it on Keras 3 already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("keras_tuner")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SEARCH = textwrap.dedent("""
    import json, sys
    import numpy as np, pandas as pd
    from tfmtl.compat import keras_tuner
    kt = keras_tuner()
    from tfmtl.features import FeatureSpec, Label
    from tfmtl.models import MMoE

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"c": rng.choice(list("abc"), 48), "x": rng.normal(size=48),
                       "y": rng.integers(0, 2, 48), "z": rng.integers(0, 2, 48)})
    spec = FeatureSpec.from_dataframe(df, labels=[Label("y"), Label("z")])

    def build(hp):
        model = MMoE(spec, num_experts=hp.Choice("num_experts", [2, 3]), expert_units=[4], tower_units=[2])
        model.compile()
        return model

    tuner = kt.RandomSearch(build, objective="val_loss", max_trials=2, seed=0, directory=sys.argv[1],
                            project_name="mmoe")
    tuner.search(df, validation_data=df, epochs=1, verbose=0)
    trials = tuner.oracle.get_best_trials(num_trials=5)
    best = tuner.get_best_models(1)[0]
    print(json.dumps({"trials": len(trials), "experts": sorted(t.hyperparameters.get("num_experts") for t in trials),
                      "scores": [t.score for t in trials], "best": type(best).__name__,
                      "backend": kt.src.backend.keras.__name__}))
""")


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


def test_random_search_over_an_mmoe_runs_two_trials(tmp_path):
    done = _run(SEARCH, str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["trials"] == 2 and result["best"] == "MMoE" and result["backend"] == "tf_keras"
    assert result["experts"] == [2, 3]  # two trials of a 2-value space with seed 0 cover both values
    assert all(score is not None and score > 0 for score in result["scores"])


def test_keras_tuner_imported_on_keras_3_first_is_refused_by_name():
    done = _run("import keras_tuner\nfrom tfmtl.compat import keras_tuner as ours\nours()")
    assert done.returncode != 0
    assert "keras_tuner was imported on Keras 3 before tfmtl.compat.keras_tuner()" in done.stderr
