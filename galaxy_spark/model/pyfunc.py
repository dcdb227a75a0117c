"""The ensemble as an MLflow pyfunc model (kept apart so scoring workers never import MLflow)."""
from __future__ import annotations

import warnings

import mlflow.pyfunc

from galaxy_spark.model.ensemble import Ensemble

ARTIFACT_KEY = "ensemble"

# We pass an explicit signature when logging; MLflow's hint-based validation is not wanted.
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")


class GalaxyEnsembleModel(mlflow.pyfunc.PythonModel):
    """predict(catalogue rows as a pandas DataFrame) -> the four estimates (ensemble.OUTPUT_COLUMNS)."""

    def load_context(self, context):
        self.ensemble = Ensemble.load(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input, params=None):
        return self.ensemble.predict(model_input)
