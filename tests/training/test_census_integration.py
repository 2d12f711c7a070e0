"""Integration (issue #7): MultiObjectiveModel around a real tfmtl MMoE, trained on a census DataFrame.

A short single-objective income run gives the set point (its last-epoch training loss,
relaxed by 3%); the same MMoE then continues with ``never_married`` added and a PID
controller on the income weight (MoRec's protocol: fine-tune a pretrained model). The
controller must keep the income loss within ``BAND`` of the set point while the second
task is learned. ``bench/pid_control.py`` runs the same experiment at full size, with the
static and uncertainty weightings beside it.
"""

import numpy as np
import pytest

from tfmtl.compat import keras
from tfmtl.datasets.census import load_census
from tfmtl.models import MMoE
from tfmtl.training import MultiObjectiveModel, PIDController, PIDWeighting

ROWS = 20_000  # 40 steps per epoch at batch 512
BATCH = 512
SINGLE_EPOCHS = 6
PID_EPOCHS = 6
RELAX = 0.03
# Epoch-mean income losses on this slice move by ~1-2% between epochs (mini-batch noise and
# the model still learning); 5% leaves room for that but not for an uncontrolled drift
# (the income loss of an unweighted continuation changes by ~10% here, see below).
BAND = 0.05
BCE = "binary_crossentropy"
OBJECTIVES = {"income": ("income_50k", BCE), "never_married": ("never_married", BCE)}


@pytest.fixture(scope="module")
def splits():
    # Scalar numerics: with the default PLE embeddings this small MMoE is still learning income after
    # SINGLE_EPOCHS (its continuation reaches 0.20 against a 0.32 set point at the weight floor), so the
    # set point would not be a converged loss; the test is about the controller, not the encoding.
    return load_census(nrows=ROWS, numeric_encoding="scalar")


@pytest.mark.timeout(300)
def test_pid_holds_census_income_loss_at_set_point(splits):
    keras.utils.set_random_seed(0)
    # One 4-unit expert: the tasks compete for a narrow shared representation, so the weights matter.
    mmoe = MMoE(splits.spec, tasks=["income_50k", "never_married"], num_experts=1, expert_units=[4],
                tower_units=[8], batch_norm=False, cross=None)

    # 1. Single objective (the never_married head gets no gradient): the set point.
    single = MultiObjectiveModel(mmoe, {"income": OBJECTIVES["income"]})
    single.compile(optimizer=keras.optimizers.Adam(3e-3))
    single_history = single.fit(splits.train, batch_size=BATCH, epochs=SINGLE_EPOCHS, verbose=0).history
    set_point = (1 + RELAX) * single_history["loss_income"][-1]

    # 2. Both objectives from that checkpoint; the controller owns q_income, q_never_married = 1.
    # Linear P (deviations are ~0.01 in loss units), q = 1 at the set point, within [0.05, 10].
    controller = PIDController(set_point=set_point, kp=100.0, ki=2.0, q_min=1.0, sigmoid_p=False, output_min=0.05,
                               output_max=10.0, integral_min=-1.0, integral_max=1.0, initial_weight=1.0)
    model = MultiObjectiveModel(mmoe, OBJECTIVES, accuracy_objective="income",
                                weighting=PIDWeighting("income", controller, preferences={"never_married": 1.0},
                                                       auxiliary_scale=1.0))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(splits.train, batch_size=BATCH, epochs=PID_EPOCHS, verbose=0,
                        validation_data=splits.validation).history

    # fit history holds the per-objective losses and the weights in force.
    for key in ("loss", "loss_income", "loss_never_married", "q_income", "q_never_married"):
        assert len(history[key]) == PID_EPOCHS and np.all(np.isfinite(history[key])), key
        assert len(history["val_" + key]) == PID_EPOCHS, key
    assert history["q_never_married"] == pytest.approx([1.0] * PID_EPOCHS)
    assert history["q_income"][-1] == pytest.approx(float(controller.weight))
    assert int(controller.steps) == PID_EPOCHS * int(np.ceil(ROWS / BATCH))
    assert np.ptp(history["q_income"]) > 0.05, "the controller never moved the income weight"

    # The second task is learned (constant-predictor BCE at a 43% base rate is ~0.68) ...
    assert history["loss_never_married"][-1] < 0.45
    # ... while the income loss stays at the set point.
    held = np.mean(history["loss_income"][-2:])
    assert abs(held / set_point - 1) <= BAND, (held, set_point, history["loss_income"], history["q_income"])
