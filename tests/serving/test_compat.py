"""serving.compat: the same JSON and message classes on protobuf 3.20 (Python 3.10 set) and 5+ (newest set)."""

from google.protobuf import descriptor_pb2, descriptor_pool
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from serving.compat import message_class, message_to_dict


def test_message_to_dict_prints_defaults_with_proto_field_names():
    spec = model_pb2.ModelSpec(name="census")
    # TF Serving's REST JSON: the unset signature_name is printed, snake_case kept; the unset
    # version (a message, with presence) is not.
    assert message_to_dict(spec) == {"name": "census", "signature_name": ""}
    status = get_model_status_pb2.GetModelStatusResponse()
    version = status.model_version_status.add(version=3)
    version.status.error_message = ""
    assert message_to_dict(status) == {"model_version_status": [
        {"version": "3", "state": "UNKNOWN", "status": {"error_code": "OK", "error_message": ""}}]}


def test_message_class_of_a_run_time_descriptor_round_trips():
    file_proto = descriptor_pb2.FileDescriptorProto(name="compat_test.proto", package="compat_test", syntax="proto3")
    message = file_proto.message_type.add(name="Pair")
    message.field.add(name="left", number=1, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    message.field.add(name="right", number=2, label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    pair = message_class(pool.FindMessageTypeByName("compat_test.Pair"))
    decoded = pair.FromString(pair(left=7, right="x").SerializeToString())
    assert (decoded.left, decoded.right) == (7, "x")
    assert message_to_dict(pair()) == {"left": "0", "right": ""}
