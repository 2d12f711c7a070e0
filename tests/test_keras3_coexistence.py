"""A Keras 3 program and tfmtl in one process: ``import tfmtl`` leaves the user's Keras alone.

Runs in a fresh interpreter without ``TF_USE_LEGACY_KERAS`` (the suite's conftest sets it for itself).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROGRAM = textwrap.dedent("""
    import json, os, sys
    import numpy as np, pandas as pd
    import keras  # the user's Keras 3, imported before tfmtl
    import tfmtl
    from tfmtl.features import FeatureSpec, Label
    from tfmtl.models import MMoE
    import tensorflow as tf

    out = sys.argv[1]
    x = np.arange(8, dtype="float32").reshape(4, 2)
    users = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    users.compile(optimizer="sgd", loss="mse")
    users.fit(x, np.ones((4, 1)), epochs=1, verbose=0)
    users.save(os.path.join(out, "user.keras"))

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"c": rng.choice(list("abc"), 32), "x": rng.normal(size=32),
                       "y": rng.integers(0, 2, 32), "z": rng.integers(0, 2, 32)})
    model = MMoE(FeatureSpec.from_dataframe(df, labels=[Label("y"), Label("z")]), num_experts=2,
                 expert_units=[4], tower_units=[2])
    model.compile()
    model.fit(df, epochs=1, verbose=0)
    model.save(os.path.join(out, "mmoe.keras"))
    before = model.predict(df, verbose=0)
    after = tfmtl.keras.models.load_model(os.path.join(out, "mmoe.keras")).predict(df, verbose=0)
    reloaded = keras.saving.load_model(os.path.join(out, "user.keras"))
    print(json.dumps({
        "env": os.environ.get("TF_USE_LEGACY_KERAS"), "keras": keras.version(), "tf_keras": tf.keras.version(),
        "tfmtl_keras": tfmtl.keras.__name__, "user_is_keras3": isinstance(users, keras.Model),
        "mmoe_is_keras2": isinstance(model, tfmtl.keras.Model) and not isinstance(model, keras.Model),
        "mmoe_round_trip": float(max(abs(before[k] - after[k]).max() for k in before)),
        "user_round_trip": float(abs(reloaded.predict(x, verbose=0) - users.predict(x, verbose=0)).max()),
    }))
""")


def test_a_keras_3_program_and_tfmtl_share_one_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["env"] is None  # import tfmtl set nothing
    assert result["keras"].startswith("3.") and result["tf_keras"].startswith("3.")  # tf.keras stays Keras 3
    assert result["tfmtl_keras"] == "tf_keras" and result["user_is_keras3"] and result["mmoe_is_keras2"]
    assert result["mmoe_round_trip"] < 1e-6 and result["user_round_trip"] < 1e-6
