"""serving.servable.Signature: the flat call the server uses gives what the structured call gives."""

import numpy as np
import pytest
import tensorflow as tf

from serving.servable import Servable


def _structured(servable: Servable, key: str, inputs: dict) -> dict:
    fn = servable._loaded.signatures[key]
    out = fn(**{k: tf.convert_to_tensor(v, dtype=servable.signature(key).inputs[k].dtype) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def test_flat_call_equals_the_structured_call_on_a_multi_input_model(zoo):
    servable = Servable.load("multi", 1, zoo["multi_v1"])
    signature = servable.signature(None)
    assert signature._flat is not None, "a dense keyword signature takes the flat call"
    assert [key for key, _ in signature._flat] == sorted(signature.inputs)
    inputs = {"occupation": np.array(["Sales", "Tech-support", "unseen"], dtype=object),
              "age": np.array([39.0, 50.0, -1.0], np.float32)}
    got, want = signature.run(inputs), _structured(servable, "serving_default", inputs)
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


def test_inputs_are_converted_as_tf_convert_to_tensor_converts_them(zoo):
    # An int64 array for a float input and Python lists are accepted by both calls alike.
    servable = Servable.load("multi", 1, zoo["multi_v1"])
    inputs = {"occupation": np.array([b"Sales"], dtype=object), "age": np.array([39], np.int64)}
    got, want = servable.signature(None).run(inputs), _structured(servable, "serving_default", inputs)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])


class _Ragged(tf.Module):
    @tf.function(input_signature=[tf.RaggedTensorSpec([None, None], tf.float32)])
    def serve(self, x):
        return {"total": tf.reduce_sum(x, axis=1)}


def test_a_ragged_input_is_served_as_its_component_tensors(tmp_path):
    # A signature function exports a ragged argument as flat values + row splits, both plain tensors.
    module = _Ragged()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    servable = Servable.load("ragged", 1, str(tmp_path))
    signature = servable.signature(None)
    assert [key for key, _ in signature._flat] == ["x", "x_1"]
    inputs = {"x": np.array([1.0, 2.0, 3.0], np.float32), "x_1": np.array([0, 2, 3], np.int64)}
    np.testing.assert_array_equal(signature.run(inputs)["total"], [3.0, 3.0])
    np.testing.assert_array_equal(_structured(servable, "serving_default", inputs)["total"], [3.0, 3.0])


@pytest.mark.parametrize("bad", [{"occupation": np.array(["a"], dtype=object)},
                                 {"occupation": np.array(["a"], dtype=object), "age": np.ones(1), "x": np.ones(1)}])
def test_inputs_must_be_exactly_the_signatures(zoo, bad):
    servable = Servable.load("multi", 1, zoo["multi_v1"])
    with pytest.raises(Exception, match="takes inputs"):
        servable.signature(None).run(bad)
