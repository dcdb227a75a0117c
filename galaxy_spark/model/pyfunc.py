"""The ensemble as a self-contained MLflow pyfunc model (kept apart so scoring workers never
import MLflow).

The logged model carries what it needs: the weights and feature spec (artifact ``ensemble/``),
the few modules that evaluate them (`SHIPPED_MODULES`, MLflow ``code_paths``: the model's
``code/galaxy_spark/``) and pinned requirements (`requirements`). So
``mlflow.pyfunc.load_model("models:/galaxy-ensemble@champion").predict(rows)`` works in an
environment that has only those requirements — no galaxy_spark installation, no repository —
and so does ``mlflow models serve`` (tests/test_serving.py checks both).

Input: canonical catalogue rows (the signature's columns: per band magnitude, error, limit and
state, then morphology). Output: the estimate columns of the Spark scores (model/heads.py,
docs/outputs.md: the same names, dtypes, flags and values; `Ensemble.predict` runs the same
kernel, in bounded chunks). A request the model cannot score (missing columns) is an
``MlflowException`` with INVALID_PARAMETER_VALUE: HTTP 400 with a short message naming the
columns; a row with an input outside the survey's valid set gets null estimates and
``FLAG_INVALID_INPUT``.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import mlflow.pyfunc

from galaxy_spark.errors import InputError
from galaxy_spark.model.ensemble import Ensemble

ARTIFACT_KEY = "ensemble"
# What the model checks at its door, logged with it (MLmodel `metadata.input_checks`) beside the
# signature, which has no room for prose.
INPUT_CHECKS = ("Every input column of the signature is required: a request without some is a 400 naming them. "
                "Per row, a band state other than 0 (detected), 1 (not detected) or 2 (not observed), or a "
                "detection's magnitude or error or a non-detection's limit outside the survey's valid ranges "
                "(an undecoded sentinel such as 99 lands there) gives null estimates and quality_flags bits "
                "16 + 1; nothing is estimated from such a row. Output: the Spark scores' estimate columns, "
                "same names, dtypes and values (galaxy_spark docs/outputs.md).")

# The package modules `predict` imports (relative to galaxy_spark/), shipped with the model.
SHIPPED_MODULES = ("__init__.py", "errors.py", "config.py", "survey.py", "survey_types.py", "features.py",
                   "model/__init__.py", "model/ensemble.py", "model/estimates.py", "model/heads.py",
                   "model/kernels.py", "model/pyfunc.py", "model/sed.py")
# Third-party distributions those modules import, pinned in the model's requirements.txt.
REQUIRED_DISTRIBUTIONS = ("mlflow", "numpy", "pandas", "pyyaml", "numba", "cloudpickle")

# We pass an explicit signature when logging; MLflow's hint-based validation is not wanted.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")


class GalaxyEnsembleModel(mlflow.pyfunc.PythonModel):
    """predict(catalogue rows as a pandas DataFrame) -> the estimates (`Ensemble.output_table`)."""

    def load_context(self, context):
        self.ensemble = Ensemble.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input, params=None):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        try:
            return self.ensemble.predict(model_input)
        except InputError as e:            # a bad request, not a server failure
            raise MlflowException(str(e), error_code=INVALID_PARAMETER_VALUE) from None


def shipped_code(dest: str | Path) -> Path:
    """Copy `SHIPPED_MODULES` into ``dest/galaxy_spark/`` (the directory to give MLflow as
    ``code_paths``); returns it."""
    src = Path(__file__).resolve().parent.parent
    out = Path(dest) / "galaxy_spark"
    for rel in SHIPPED_MODULES:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, out / rel)
    return out


def requirements() -> list[str]:
    """`REQUIRED_DISTRIBUTIONS` pinned to the versions installed here."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in REQUIRED_DISTRIBUTIONS]
