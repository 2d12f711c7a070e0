"""The classify and regress APIs: JSON examples -> serialized tf.Example -> results.

A request is ``{"signature_name"?, "context"?, "examples": [{feature: value}]}``.
A feature value is a scalar or a flat list; its type is inferred the way TF
Serving does: strings (or ``{"b64": ...}``) become a bytes_list, integers an
int64_list, and any number with a fraction or exponent a float_list. Context
features are merged into every example (an example's own value wins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.codec import decode_b64, is_b64, json_type, signature_name_of, to_json_value
from serving.errors import InvalidArgument
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Signature

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_OUTPUTS = "outputs"


def parse_examples_request(body: Any, api: str) -> tuple[str, list[bytes]]:
    """A classify/regress body -> (signature name, serialized tf.Examples)."""
    if not isinstance(body, dict):
        raise InvalidArgument(f"{api} request must be a JSON object, got {json_type(body)}")
    # Other top-level keys are ignored, as TF Serving ignores them.
    signature_name = signature_name_of(body)
    if "examples" not in body:
        raise InvalidArgument(f"{api} request has no 'examples'")
    examples = body["examples"]
    if not isinstance(examples, list):
        raise InvalidArgument(f"'examples' must be a JSON array, got {json_type(examples)}")
    if not examples:
        raise InvalidArgument("'examples' is empty; send at least one example")
    context = None
    if body.get("context") is not None:
        context = json_to_example(body["context"], "context")
    serialized = []
    for i, item in enumerate(examples):
        example = json_to_example(item, f"examples[{i}]")
        if context is not None:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(example)  # map merge: the example's features replace the context's
            example = merged
        serialized.append(example.SerializeToString())
    return signature_name, serialized


def json_to_example(features: Any, path: str) -> example_pb2.Example:
    """One JSON object of features -> a tf.Example."""
    if not isinstance(features, dict):
        raise InvalidArgument(f"{path} must be a JSON object mapping feature names to values, "
                              f"got {json_type(features)}")
    example = example_pb2.Example()
    for name, value in features.items():
        _fill_feature(example.features.feature[name], value, f"{path}[{name!r}]")
    return example


def _fill_feature(feature: feature_pb2.Feature, value: Any, path: str) -> None:
    values = value if isinstance(value, list) else [value]
    if not values:
        feature.SetInParent()  # an empty feature of no kind, as TF Serving makes it
        return
    kinds = set()
    for i, v in enumerate(values):
        where = f"{path}[{i}]" if isinstance(value, list) else path
        if isinstance(v, str) or is_b64(v):
            kinds.add("bytes")
        elif isinstance(v, bool):
            kinds.add("int")  # TF Serving stores booleans as int64 1/0
        elif v is None or isinstance(v, (list, dict)):
            raise InvalidArgument(f"{where} must be a string, {{\"b64\": ...}} or a number "
                                  f"(a feature is a scalar or a flat list), got {json_type(v)}")
        elif isinstance(v, float):
            kinds.add("float")
        else:
            if not _INT64_MIN <= v <= _INT64_MAX:
                raise InvalidArgument(f"{where} is out of the int64 range")
            kinds.add("int")
    if "bytes" in kinds and len(kinds) > 1:
        raise InvalidArgument(f"{path} mixes strings and numbers; a feature has a single type")
    if kinds == {"bytes"}:
        feature.bytes_list.value.extend(
            decode_b64(v["b64"], path) if isinstance(v, dict) else v.encode("utf-8") for v in values)
    elif "float" in kinds:
        floats = np.asarray(values, dtype=np.float64)
        if np.any(np.isfinite(floats) & (np.abs(floats) > np.finfo(np.float32).max)):
            raise InvalidArgument(f"{path} holds a value out of the float32 range of a float_list")
        feature.float_list.value.extend(floats.tolist())
    else:
        feature.int64_list.value.extend(int(v) for v in values)


def serialized_examples(request_input: input_pb2.Input) -> list[bytes]:
    """The serialized tf.Examples of a tensorflow_serving ``Input`` proto (warmup records)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if kind == "example_list_with_context":
        context = request_input.example_list_with_context.context
        out = []
        for e in request_input.example_list_with_context.examples:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            merged.MergeFrom(e)
            out.append(merged.SerializeToString())
        return out
    raise InvalidArgument("Input has neither example_list nor example_list_with_context")


# --------------------------------------------------------------------------- running


def check_classify_signature(signature: Signature, *, method_name_check: bool = False) -> None:
    """TF Serving's checks of a classification signature (classifier.cc, PreProcessClassification), in its words.

    The method name is checked only with ``method_name_check`` (``--enable_signature_method_name_check``);
    the signature must always have one input, ``inputs``, and one or two outputs among ``classes`` and
    ``scores``.
    """
    if method_name_check and signature.method_name != CLASSIFY_METHOD:
        raise InvalidArgument(f"Expected classification signature method_name to be {CLASSIFY_METHOD}. Was: "
                              f"{signature.method_name}")
    if len(signature.inputs) != 1:
        raise InvalidArgument(f"Expected one input Tensor. ({_describe(signature)})")
    if len(signature.outputs) not in (1, 2):
        raise InvalidArgument(f"Expected one or two output Tensors, found {len(signature.outputs)} "
                              f"({_describe(signature)})")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise InvalidArgument(f"No classification inputs found in SignatureDef: {_describe(signature)}")
    if not ({CLASSIFY_CLASSES, CLASSIFY_SCORES} & set(signature.outputs)):
        raise InvalidArgument(f'Expected classification signature outputs to contain at least one of '
                              f'"{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}". Signature was: {_describe(signature)}')


def check_regress_signature(signature: Signature, *, method_name_check: bool = False) -> None:
    """TF Serving's checks of a regression signature (regressor.cc, PreProcessRegression), in its words.

    The method name is checked only with ``method_name_check``; the signature must always have one
    input, ``inputs``, and one output, ``outputs``.
    """
    if method_name_check and signature.method_name != REGRESS_METHOD:
        raise InvalidArgument(f"Expected regression signature method_name to be {REGRESS_METHOD}. Was: "
                              f"{signature.method_name}")
    if len(signature.inputs) != 1:
        raise InvalidArgument(f"Expected one input Tensor. ({_describe(signature)})")
    if len(signature.outputs) != 1:
        raise InvalidArgument(f"Expected one output Tensor. ({_describe(signature)})")
    if CLASSIFY_INPUTS not in signature.inputs:
        raise InvalidArgument(f"No regression inputs found in SignatureDef: {_describe(signature)}")
    if REGRESS_OUTPUTS not in signature.outputs:
        raise InvalidArgument(f"No regression outputs found in SignatureDef: {_describe(signature)}")


def _describe(signature: Signature) -> str:
    return (f"signature {signature.key!r} (method_name {signature.method_name!r}) has inputs {list(signature.inputs)} "
            f"and outputs {list(signature.outputs)}")


def examples_tensor(serialized: list[bytes]) -> dict[str, np.ndarray]:
    """The single string input of a classify/regress signature."""
    array = np.empty(len(serialized), dtype=object)
    array[:] = serialized
    return {CLASSIFY_INPUTS: array}


def classification_results(outputs: Mapping[str, np.ndarray], num_examples: int) -> list[list[tuple[str, float]]]:
    """``[[(label, score), ...] per example]``; a missing classes output gives empty labels."""
    classes = outputs.get(CLASSIFY_CLASSES)
    scores = outputs.get(CLASSIFY_SCORES)
    for key, array in ((CLASSIFY_CLASSES, classes), (CLASSIFY_SCORES, scores)):
        if array is not None and (array.ndim != 2 or array.shape[0] != num_examples):
            raise InvalidArgument(f"classification output {key!r} has shape {list(array.shape)}; expected "
                                  f"[{num_examples}, num_classes]")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidArgument(f"classification outputs disagree on the number of classes: 'classes' has "
                              f"{classes.shape[1]}, 'scores' has {scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    labels = [[_label(v) for v in row] for row in classes] if classes is not None else None
    score_values = to_json_value(scores.astype(np.float32)) if scores is not None else None
    # TF Serving leaves the label empty without 'classes' and the score 0 without 'scores'.
    return [[(labels[i][c] if labels else "", score_values[i][c] if score_values else 0.0)
             for c in range(num_classes)] for i in range(num_examples)]


def _label(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def regression_results(outputs: Mapping[str, np.ndarray], num_examples: int) -> list[float]:
    """One float per example from an ``outputs`` tensor of shape [B] or [B, 1]."""
    values = np.asarray(outputs[REGRESS_OUTPUTS])
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != num_examples:
        raise InvalidArgument(f"regression output 'outputs' has shape {list(np.shape(outputs[REGRESS_OUTPUTS]))}; "
                              f"expected [{num_examples}] or [{num_examples}, 1]")
    return to_json_value(values.astype(np.float32))
