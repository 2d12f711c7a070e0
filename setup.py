"""tfmtl: multi-task, multi-domain and multi-modal recommendation models for TensorFlow/Keras.

``pip install tfmtl`` brings the Keras library (models, layers, training, export, the ``tfmtl`` CLI);
extras add the rest: ``[pipeline]`` (TFX, Beam, Kubeflow V2), ``[serving]`` (the TF Serving drop-in
server and client; no TFX), ``[parquet]``, ``[dev]`` (tests, lint), ``[all]``. Requirements are ranges,
one file each under ``requirements/``; the exact Python 3.10 set is ``requirements/constraints.txt``; the
newest tested set (Python 3.12) is these ranges resolved without constraints (README: Compatibility).
"""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
EXTRAS = ("pipeline", "serving", "parquet", "dev")


def _requirements(name: str) -> list[str]:
    with open(os.path.join(HERE, "requirements", name + ".txt")) as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


extras = {name: _requirements(name) for name in EXTRAS}
extras["all"] = sorted({requirement for name in EXTRAS if name != "dev" for requirement in extras[name]})

setup(
    name="tfmtl",
    version="0.1.0",
    description="Multi-task, multi-domain and multi-modal recommendation models for TensorFlow/Keras, "
                "with a TFX pipeline and a TF Serving-compatible server",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["tfmtl", "tfmtl.*", "pipeline", "pipeline.*", "serving", "serving.*"]),
    package_data={"tfmtl.datasets": ["data/census/*.gz", "data/census/*.md"]},
    install_requires=_requirements("core"),
    extras_require=extras,
    entry_points={"console_scripts": ["tfmtl=tfmtl.cli:main", "tfmtl-serving=serving.cli:main"]},
)
