"""MLflow tracking: the store (MLFLOW_TRACKING_URI wins, else pipeline.yaml's mlflow.tracking_uri,
sqlite:///mlflow.db), the training experiment and the UI address that opens it on its runs."""
from __future__ import annotations

import os
import sys

from galaxy_spark.config import load_pipeline_config

# MLflow 3 files experiments by kind: this tag marks ours as model training, not a GenAI app.
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# MLflow 3.17's UI picks an experiment's landing view from its per-browser "GenAI | Model
# training" switch (GenAI unless flipped), not from the tag; this URL parameter overrides it.
UI_RUNS_VIEW = "workflowType=machine_learning"


def configure_tracking() -> str:
    """Point MLflow at the tracking store (MLFLOW_TRACKING_URI, else pipeline.yaml's
    mlflow.tracking_uri) and return its URI."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or load_pipeline_config()["mlflow"]["tracking_uri"]
    mlflow.set_tracking_uri(uri)
    return uri


def use_experiment(name: str) -> str:
    """Make `name` the active experiment (created when missing) with the training kind tag, also
    when it already existed without it; returns its id."""
    import mlflow

    exp = mlflow.set_experiment(name)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    return exp.experiment_id


def experiment_url(base: str, experiment_id: str) -> str:
    """The UI address of an experiment that lands on its training runs in any browser."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{UI_RUNS_VIEW}"


def main(argv: list[str]) -> int:
    """`python -m galaxy_spark.model.tracking BASE_URL`: print where `make ui` shows the runs."""
    from mlflow import MlflowClient

    base = argv[0] if argv else "http://127.0.0.1:5000"
    configure_tracking()
    name = load_pipeline_config()["mlflow"]["experiment"]
    exp = MlflowClient().get_experiment_by_name(name)
    where = experiment_url(base, exp.experiment_id) if exp else f"{base} (no experiment {name!r} yet: make train)"
    print(f"MLflow UI: training runs at {where}; models at {base}/#/models")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
