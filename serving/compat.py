"""The one home of the serving host's differences between dependency versions.

The host runs on the whole range tfmtl admits: protobuf 3.20 (TFX 1.16's, beside TensorFlow 2.16)
through the protobuf 5+ that TensorFlow 2.21 brings, and TF Lite with or without the Flex delegate.
Each difference is decided here once, by what the installed package offers, never by its version
number; the rest of ``serving/`` calls these functions only.

* :func:`message_to_dict`: a proto as TF Serving's REST JSON (defaults printed, proto field names).
* :func:`message_class`: the Python class of a message descriptor built at run time.
* :func:`tflite_runs_select_tf_ops`: whether ``tf.lite.Interpreter`` here runs TensorFlow ops (Flex).
"""

from __future__ import annotations

import functools
import inspect

from google.protobuf import json_format, message_factory

__all__ = ["message_to_dict", "message_class", "tflite_runs_select_tf_ops"]

# protobuf 5.26 renamed json_format's "including_default_value_fields" to
# "always_print_fields_with_no_presence" (and later releases dropped the old name). For the messages TF
# Serving prints (proto3, no `optional` fields) both print the same fields.
_PRINT_DEFAULTS = ("always_print_fields_with_no_presence"
                   if "always_print_fields_with_no_presence" in inspect.signature(json_format.MessageToDict).parameters
                   else "including_default_value_fields")


def message_to_dict(message) -> dict:
    """``message`` as the JSON TF Serving's REST API returns: fields at their default printed too
    (``"error_message": ""``), proto field names kept (``signature_def``, not ``signatureDef``)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True, **{_PRINT_DEFAULTS: True})


def message_class(descriptor) -> type:
    """The generated message class for ``descriptor`` (from a run-time ``DescriptorPool``).

    protobuf 4.21 added ``message_factory.GetMessageClass``; protobuf 5 removed the older
    ``MessageFactory.GetPrototype`` that protobuf 3.20 has alone.
    """
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(descriptor.file.pool).GetPrototype(descriptor)


@functools.cache
def tflite_runs_select_tf_ops() -> bool:
    """Whether this TensorFlow's ``tf.lite.Interpreter`` runs a model converted with ``SELECT_TF_OPS``.

    TensorFlow 2.16's wheel links the Flex delegate into its Python interpreter; TensorFlow 2.21's does
    not ("Select TensorFlow op(s) ... are not supported by this interpreter"). Found out by running the
    smallest such model: an int64 -> int64 hash table (what ``IntegerLookup`` builds), which has no
    TF Lite builtin, unlike string -> int64 (``StringLookup``). Converts once per process (~1 s).
    """
    import tensorflow as tf

    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant([3, 5], tf.int64), tf.constant([1, 2], tf.int64)), -1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)])
    def lookup(ids):
        return {"index": table.lookup(ids)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([lookup.get_concrete_function()], table)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    try:
        index = interpreter.get_signature_runner()(ids=tf.constant([5, 9], tf.int64).numpy())["index"]
    except RuntimeError as e:
        if "Flex delegate" in str(e):
            return False
        raise
    return index.tolist() == [2, -1]
