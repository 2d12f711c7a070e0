"""The Tuner module: ``tuner_fn`` searches the Trainer's run over a search space, on the Transform output.

``Tuner(tuner_fn="pipeline.tuner.tuner_fn")`` gets the Trainer's ``custom_config`` plus the
:class:`~tfmtl.training.tuning.HyperparameterSearch` (see :func:`pipeline.config.trainer_config`).
Every trial is the Trainer's own run (:class:`~pipeline.config.TrainingConfig`: the model, the compile,
the convergence callbacks, the kept epoch) with the trial's values, on the same datasets the Trainer
reads; the Tuner writes the best trial's values, and the Trainer (``hyperparameters=``) applies them.
"""

from __future__ import annotations

from tfx import v1 as tfx

from pipeline.config import read_search
from pipeline.trainer import fit_data, trainer_inputs


def tuner_fn(fn_args: tfx.components.FnArgs) -> tfx.components.TunerFnResult:
    """TFX Tuner entry point: the tuner and what its ``search`` is called with."""
    search = read_search(fn_args.custom_config)
    if search is None:
        raise ValueError("the Tuner's custom_config has no search space: build the pipeline with "
                         "create_pipeline(..., search=HyperparameterSearch(...))")
    spec, training, tft_output = trainer_inputs(fn_args)
    if "batch_size" in search.space:
        raise ValueError("search space entry 'batch_size': the Tuner reads the Transform output batched once by "
                         "the run's batch_size; search it with tfmtl.training.tuning on DataFrames instead")
    train, evaluation, steps = fit_data(fn_args, tft_output, spec, training, training.batch_size)
    # TFX's Tuner executor imported KerasTuner first, on Keras 3 where keras 3.x is installed: re-import it on
    # tf_keras for this search (the executor only drives the tuner returned here).
    tuner = search.tuner(training, spec, fn_args.working_dir, project_name="tfmtl_tuner", encoded_inputs=True,
                         replace_keras_3=True)
    return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={"x": train, "validation_data": evaluation,
                                                                 **steps})
