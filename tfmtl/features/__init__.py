"""One feature spec and everything derived from it: inputs, preprocessing, datasets."""

from tfmtl.features.data import batch_arrays, dataframe_to_dataset
from tfmtl.features.inference import InferenceOptions, InferenceReport
from tfmtl.features.labels import LABEL_SYNTAX, label_argument, parse_label, typed_labels
from tfmtl.features.preprocessing import (
    BUCKET_SUFFIX,
    FeaturePreprocessing,
    encoded_names,
    feature_inputs,
    fit_list,
    serving_signature,
)
from tfmtl.features.schema import CategoricalFeature, Label, ListFeature, NumericFeature, SpecError
from tfmtl.features.spec import FeatureSpec

__all__ = [
    "BUCKET_SUFFIX",
    "CategoricalFeature",
    "FeaturePreprocessing",
    "FeatureSpec",
    "InferenceOptions",
    "InferenceReport",
    "LABEL_SYNTAX",
    "Label",
    "ListFeature",
    "NumericFeature",
    "SpecError",
    "batch_arrays",
    "dataframe_to_dataset",
    "encoded_names",
    "feature_inputs",
    "fit_list",
    "label_argument",
    "parse_label",
    "serving_signature",
    "typed_labels",
]
