"""FSMD's FM as the paper keeps it: DeepFM's FM, one over all fields, shared by the tasks."""

import numpy as np
import pytest

from tfmtl._keras import keras
from tfmtl.datasets import synthetic
from tfmtl.layers import FactorizationMachine, SharedFactorizationMachine
from tfmtl.models import FG, FS, FSMD, Base


@pytest.fixture(scope="module")
def frame():
    return synthetic.multitask_frame(64)


def _fm_term(model, df):
    fm = model.get_layer("fm")
    probe = keras.Model(model.inputs, fm.output)
    return probe.predict(model.make_dataset(df, with_labels=False, batch_size=64), verbose=0)


@pytest.mark.parametrize("cls,kw", [(Base, dict(bottom_units=[8], tower_units=[4])),
                                    (FG, dict(num_experts=2, expert_units=[8])),
                                    (FS, dict(num_levels=1, expert_units=[8]))],
                         ids=["base", "fg", "fs"])
def test_paper_fm_is_one_term_shared_by_every_task(frame, cls, kw):
    df, spec = frame
    model = cls(spec, **kw)
    assert isinstance(model.get_layer("fm"), SharedFactorizationMachine)
    # the dense features are FM fields too: the layer holds a latent vector per dense column
    dense_columns = model.get_layer("fm").dense_vectors.shape[0]
    assert dense_columns >= 1
    fm = _fm_term(model, df)
    assert fm.shape == (len(df), 2)
    np.testing.assert_array_equal(fm[:, 0], fm[:, 1])
    assert np.std(fm[:, 0]) > 0  # not a constant: it depends on the row's fields


def test_per_task_fm_is_a_named_option_and_configs_round_trip(frame):
    df, spec = frame
    per_task = FS(spec, num_levels=1, expert_units=[8], fm="per_task")
    assert isinstance(per_task.get_layer("fm"), FactorizationMachine)
    paper = FS(spec, num_levels=1, expert_units=[8])
    assert paper.get_config()["fm"] == "shared" and per_task.get_config()["fm"] == "per_task"
    rebuilt = FS.from_config(paper.get_config())
    assert isinstance(rebuilt.get_layer("fm"), SharedFactorizationMachine)
    with pytest.raises(ValueError, match="always has an FM"):
        FS(spec, num_levels=1, expert_units=[8], fm=False)


def test_fsmd_esmm_head_with_shared_fm():
    df, spec = synthetic.funnel_frame(64)
    model = FSMD(spec, tasks=["click", "conversion"], expert_units=[8], tower_units=[4])
    assert isinstance(model.get_layer("fm"), SharedFactorizationMachine)
    fm = _fm_term(model, df)
    np.testing.assert_array_equal(fm[:, 0], fm[:, 1])
