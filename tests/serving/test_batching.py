"""The batcher, on a numpy function (no TensorFlow), and the BatchingParameters file."""

import numpy as np
import pytest

from serving.batching import Batcher, BatchingOptions, load_batching_parameters, parse_batching_parameters
from serving.config import ConfigError
from serving.errors import Internal, InvalidArgument, ResourceExhausted


class Doubler:
    """A 'model' recording the batch sizes it was called with."""

    def __init__(self):
        self.calls = []

    def __call__(self, inputs):
        self.calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}


def _rows(*values):
    return {"x": np.array(values, dtype=np.float32)}


@pytest.fixture
def make_batcher():
    batchers = []

    def make(run, **options):
        batcher = Batcher(run, BatchingOptions(**options), name="test")
        batchers.append(batcher)
        return batcher

    yield make
    for batcher in batchers:
        batcher.close()


def test_concurrent_requests_are_merged_and_split_back(make_batcher):
    model = Doubler()
    batcher = make_batcher(model, max_batch_size=4, batch_timeout_micros=10_000_000, num_batch_threads=1)
    first, second = batcher.submit(_rows(1, 2)), batcher.submit(_rows(3, 4))  # 4 rows: a full batch, no wait
    assert first.result(10)["y"].tolist() == [2, 4]
    assert second.result(10)["y"].tolist() == [6, 8]
    assert model.calls == [4]


def test_a_partial_batch_leaves_after_the_timeout(make_batcher):
    model = Doubler()
    batcher = make_batcher(model, max_batch_size=100, batch_timeout_micros=20_000, num_batch_threads=1)
    assert batcher.run(_rows(5))["y"].tolist() == [10]
    assert model.calls == [1]


def test_a_full_queue_answers_resource_exhausted(make_batcher):
    model = Doubler()
    batcher = make_batcher(model, max_batch_size=2, batch_timeout_micros=10_000_000, max_enqueued_batches=1,
                           num_batch_threads=1)
    waiting = batcher.submit(_rows(1))
    with pytest.raises(ResourceExhausted, match="max_enqueued_batches=1"):
        batcher.submit(_rows(2, 3))
    batcher.close()  # drains what is queued
    assert waiting.result(10)["y"].tolist() == [2]


def test_oversized_requests_are_refused_or_split(make_batcher):
    model = Doubler()
    strict = make_batcher(model, max_batch_size=2, num_batch_threads=1)
    with pytest.raises(InvalidArgument, match="more than the batching max_batch_size 2"):
        strict.run(_rows(1, 2, 3))
    splitting = make_batcher(model, max_batch_size=2, num_batch_threads=1, enable_large_batch_splitting=True)
    assert splitting.run(_rows(1, 2, 3, 4, 5))["y"].tolist() == [2, 4, 6, 8, 10]
    assert sorted(model.calls) == [1, 2, 2]


def test_batches_are_padded_to_an_allowed_size(make_batcher):
    model = Doubler()
    batcher = make_batcher(model, max_batch_size=4, allowed_batch_sizes=(2, 4), num_batch_threads=1)
    assert batcher.run(_rows(1, 2, 3))["y"].tolist() == [2, 4, 6]
    assert model.calls == [4]


def test_requests_with_different_shapes_are_batched_apart(make_batcher):
    model = Doubler()
    batcher = make_batcher(model, max_batch_size=2, batch_timeout_micros=10_000_000, num_batch_threads=1)
    a = batcher.submit({"x": np.ones((1, 2), np.float32)})
    b = batcher.submit({"x": np.ones((1, 3), np.float32)})
    c = batcher.submit({"x": np.ones((1, 2), np.float32)})
    assert a.result(10)["y"].shape == (1, 2) and c.result(10)["y"].shape == (1, 2)
    batcher.close()
    assert b.result(10)["y"].shape == (1, 3)
    assert sorted(model.calls) == [1, 2]


def test_errors_reach_every_request_of_the_batch(make_batcher):
    def failing(inputs):
        raise InvalidArgument("bad batch")

    batcher = make_batcher(failing, max_batch_size=2, batch_timeout_micros=10_000_000, num_batch_threads=1)
    futures = [batcher.submit(_rows(1)), batcher.submit(_rows(2))]
    for future in futures:
        with pytest.raises(InvalidArgument, match="bad batch"):
            future.result(10)


def test_outputs_without_a_batch_dimension_are_an_internal_error(make_batcher):
    batcher = make_batcher(lambda inputs: {"total": np.float32(inputs["x"].sum())}, num_batch_threads=1)
    with pytest.raises(Internal, match="cannot be batched"):
        batcher.run(_rows(1, 2))


def test_inputs_without_a_common_batch_size_run_unbatched(make_batcher):
    model = Doubler()
    batcher = make_batcher(lambda inputs: {"n": np.array(len(inputs["x"]) + len(inputs["z"]))}, num_batch_threads=1)
    assert batcher.run({"x": np.ones(2), "z": np.ones(3)})["n"] == 5
    assert model.calls == []


# ------------------------------------------------------------------ BatchingParameters


def test_batching_parameters_text_proto():
    options = parse_batching_parameters("""
        max_batch_size { value: 64 }
        batch_timeout_micros { value: 2000 }
        max_enqueued_batches { value: 7 }
        num_batch_threads { value: 3 }
        thread_pool_name { value: "ignored" }
        allowed_batch_sizes: 32
        allowed_batch_sizes: 64
        enable_large_batch_splitting { value: true }
    """)
    assert options == BatchingOptions(max_batch_size=64, batch_timeout_micros=2000, max_enqueued_batches=7,
                                      num_batch_threads=3, allowed_batch_sizes=(32, 64),
                                      enable_large_batch_splitting=True)


def test_batching_parameters_defaults_are_tf_servings():
    options = load_batching_parameters(None)
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches) == (1000, 0, 10)
    assert parse_batching_parameters("") == options


@pytest.mark.parametrize("text,match", [
    ("max_batch_size: 64", "Error parsing text-format tensorflow.serving.BatchingParameters"),
    ("max_batch_sise { value: 64 }", "Error parsing text-format tensorflow.serving.BatchingParameters"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "must be increasing and end with max_batch_size 8"),
    ("pad_variable_length_inputs: true", "pad_variable_length_inputs is not supported"),
    ("num_batch_threads { value: 0 }", ">= 1"),
])
def test_bad_batching_parameters(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_batching_parameters(text, source="batching.config")


def test_missing_batching_parameters_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read batching parameters file"):
        load_batching_parameters(str(tmp_path / "nope.config"))
