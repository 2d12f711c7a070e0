"""SavedModel export for TF Serving and the tfmtl REST server.

:func:`export_saved_model` writes ``<export_dir_base>/<model_name>/<version>/``, the
layout TF Serving watches; :func:`save_signatures` writes a plain SavedModel at one
path (the TFX Trainer's ``serving_model_dir``; the Pusher versions it).

Signatures (every output is one float32 probability per example, shape ``[batch]``):

- ``serving_default``: the spec's raw features by name, each ``[batch]`` (string
  categoricals ``tf.string``, integer-coded categoricals ``tf.int64``, numerics
  ``tf.float32``), plus the model's extra inputs -> ``{output: [batch]}`` (one per
  task; ESMM: ctr, cvr, ctcvr).
- ``serving_tf_example``: ``examples``, serialized ``tf.Example`` ``[batch]`` -> the
  same outputs. A missing feature takes the value a missing raw value takes in
  training: ``""`` / ``-1`` (out of vocabulary) or NaN (the mean).
- ``classify_<output>`` (method ``tensorflow/serving/classify``): ``inputs``,
  serialized examples -> ``classes`` ``[batch, 2]`` (``"0"``, ``"1"``) and ``scores``
  ``[batch, 2]`` (``1 - p``, ``p``).
- ``regress_<output>`` (method ``tensorflow/serving/regress``): ``inputs`` ->
  ``outputs`` ``[batch]`` = ``p``.

There are no ``classification``/``regression`` aliases: with several tasks, "the"
classifier would be an arbitrary one, so clients name the task.

Extra inputs: a model with inputs beyond the spec (declared by
:meth:`~tfmtl.models.base.MultiTaskModel.extra_inputs`, e.g. MAMEX's modalities)
has them in every signature under their Keras input names, with the Keras
input's dtype and shape: a float vector ``[batch, k]``, a text ``[batch]``. In a
``tf.Example`` a vector is one ``float_list`` of ``k`` values and a text one
``bytes_list`` value; a missing float extra becomes all-NaN and a missing string
extra ``""`` (MAMEX: the modality is missing), while an integer extra has no
default and must be present. Made-up warmup rows hold zeros (strings: ``""``);
with a DataFrame the extras come from ``model.make_dataset`` (or a column of that
name holding the values).

The SavedModel holds only the signatures and the variables, lookup tables and
assets they use (no Keras metadata, no optimizer state): it loads with
TensorFlow alone and needs no op outside core TensorFlow. A TF Serving warmup
file (``assets.extra/tf_serving_warmup_requests``) replays a few ``serving_default``
requests when the model loads.

Modules, one job each: :mod:`~tfmtl.export.saved_model` (the entry points),
:mod:`~tfmtl.export.signatures`, :mod:`~tfmtl.export.writer` (atomic SavedModel
writing), :mod:`~tfmtl.export.warmup` and :mod:`~tfmtl.export.checks` (argument and
input checks).

Example:

>>> import os, tempfile
>>> import tensorflow as tf
>>> from tfmtl.datasets import synthetic
>>> from tfmtl.models import MMoE
>>> df, spec = synthetic.multitask_frame(200)
>>> model = MMoE(spec, num_experts=2, expert_units=[8], tower_units=[4])
>>> model.compile(); _ = model.fit(df, epochs=1, verbose=0)
>>> base = tempfile.mkdtemp()
>>> path = export_saved_model(model, base, "mmoe")
>>> os.path.relpath(path, base)
'mmoe/1'
>>> sorted(tf.saved_model.load(path).signatures)  # doctest: +NORMALIZE_WHITESPACE
['classify_task_a', 'classify_task_b', 'regress_task_a', 'regress_task_b',
 'serving_default', 'serving_tf_example']
"""

from tfmtl.export.saved_model import export_saved_model, save_signatures
from tfmtl.export.signatures import (
    CLASSIFY_METHOD,
    CLASSIFY_PREFIX,
    REGRESS_METHOD,
    REGRESS_PREFIX,
    SERVING_DEFAULT,
    SERVING_TF_EXAMPLE,
)
from tfmtl.export.warmup import WARMUP_FILE

__all__ = [
    "CLASSIFY_METHOD",
    "CLASSIFY_PREFIX",
    "REGRESS_METHOD",
    "REGRESS_PREFIX",
    "SERVING_DEFAULT",
    "SERVING_TF_EXAMPLE",
    "WARMUP_FILE",
    "export_saved_model",
    "save_signatures",
]
