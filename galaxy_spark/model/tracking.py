"""MLflow tracking: the store (MLFLOW_TRACKING_URI wins, else pipeline.yaml's mlflow.tracking_uri,
sqlite:///mlflow.db), the training experiment and the UI address that opens it on its runs."""
from __future__ import annotations

import os
import sys

from galaxy_spark.config import load_pipeline_config
from galaxy_spark.errors import InputError

# MLflow 3 files experiments by kind: this tag marks ours as model training, not a GenAI app.
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# MLflow 3.17's UI picks an experiment's landing view from its per-browser "GenAI | Model
# training" switch (GenAI unless flipped), not from the tag; this URL parameter overrides it.
UI_RUNS_VIEW = "workflowType=machine_learning"


def configure_tracking(uri: str | None = None, job: str | None = None) -> str:
    """Point MLflow at the tracking store (`uri`: a job's --tracking-uri, else MLFLOW_TRACKING_URI,
    else pipeline.yaml's mlflow.tracking_uri) and return its URI; with `job`, print it as the job's
    first line."""
    import mlflow

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or load_pipeline_config()["mlflow"]["tracking_uri"]
    if job:
        print(f"{job}: MLflow tracking store {uri}", flush=True)
    mlflow.set_tracking_uri(uri)
    return uri


def check_store_exists(uri: str) -> None:
    """Before a lookup: a SQLite store that does not exist is an InputError naming it (MLflow would
    create an empty one as a side effect and then report the model "not found")."""
    path = sqlite_path(uri)
    if path is not None and not os.path.exists(path):
        raise InputError(f"MLflow tracking store {uri} does not exist ({os.path.abspath(path)} not found): run from "
                         f"the directory that holds it, or set MLFLOW_TRACKING_URI / --tracking-uri")


def sqlite_path(uri: str) -> str | None:
    """The database file of a ``sqlite:///`` tracking URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):]
    return None if path in ("", ":memory:") else path


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
