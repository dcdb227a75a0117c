"""MLflow tracking URI: MLFLOW_TRACKING_URI wins, else pipeline.yaml's mlflow.tracking_uri (sqlite:///mlflow.db)."""
from __future__ import annotations

import os

from galaxy_spark.config import load_pipeline_config


def configure_tracking() -> str:
    """Point MLflow at the tracking store (MLFLOW_TRACKING_URI, else pipeline.yaml's
    mlflow.tracking_uri) and return its URI."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or load_pipeline_config()["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    return uri
