"""Evaluation and MLflow: the model's run and experiment, the thesis table from the training runs,
loss histories, and logging the finished report and its scalar metrics to the model's run."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError

# The thesis' published table (train / validation), "Distant galaxies analysis with Deep Neural
# Networks": r² for the regressions, accuracy for the stellarity classifier.
THESIS_PUBLISHED = {
    "redshift": {"metric": "r2", "train": 0.202, "validation": 0.376},
    "stellarity": {"metric": "accuracy", "train": 0.9833, "validation": 0.9832},
    "stellar_mass": {"metric": "r2", "train": 0.324, "validation": 0.355},
    "spectral_type": {"metric": "r2", "train": 0.640, "validation": 0.625},
}
PRESETS_COMPARED = ("paper", "default")


def model_run_context(run_id: str, experiment: str | None = None):
    """(MlflowClient, experiment id) for the run that produced the scores: the run's own experiment,
    or ``experiment`` (a name) when it exists. Raises ``InputError`` when the run is not in the
    configured tracking store."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"the scores' model run {run_id} is not in the MLflow store "
                         f"{mlflow.get_tracking_uri()}: set MLFLOW_TRACKING_URI to the store the "
                         f"model came from, or pass --no-mlflow") from None
    experiment_id = run.info.experiment_id
    if experiment:
        exp = client.get_experiment_by_name(experiment)
        experiment_id = exp.experiment_id if exp else experiment_id
    return client, experiment_id


def latest_preset_runs(client, experiment_id: str, presets=PRESETS_COMPARED) -> dict:
    """{preset: parent Run} — the latest parent training run per preset in the experiment."""
    out = {}
    for p in presets:
        runs = client.search_runs([experiment_id], filter_string=f"tags.preset = '{p}'",
                                  order_by=["attributes.start_time DESC"], max_results=50)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        if parents:
            out[p] = parents[0]
    return out


def thesis_table(client, experiment_id: str | None, this_run: str | None = None,
                 this_test: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Rows: the four networks; columns: the thesis' published train/validation figures next to the
    latest paper/default runs' train/validation (results_table.csv) and test (the run's
    test_catalogue_* metrics: galaxies for the regressions, as training logs them). For the run being
    evaluated (``this_run``), the test column is this evaluation's ``this_test`` (same definitions).
    Also returns {preset: run id} of the runs found (empty without a client)."""
    import mlflow

    rows = {net: {"metric": v["metric"], "thesis_train": v["train"], "thesis_validation": v["validation"]}
            for net, v in THESIS_PUBLISHED.items()}
    found = {}
    if client is not None and experiment_id is not None:
        for preset, run in latest_preset_runs(client, experiment_id).items():
            found[preset] = run.info.run_id
            table = None
            try:
                local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                            artifact_path="results/results_table.csv")
                table = pd.read_csv(local).set_index("network")
            except Exception:  # noqa: BLE001 - a run without the artifact still has metrics
                table = None
            for net in rows:
                m = THESIS_PUBLISHED[net]["metric"]
                if table is not None and net in table.index:
                    rows[net][f"{preset}_train"] = float(table.loc[net, "final_train_score"])
                    rows[net][f"{preset}_validation"] = float(table.loc[net, "final_val_score"])
                    if "final_val_loss" in table.columns:
                        rows[net][f"{preset}_val_loss"] = float(table.loc[net, "final_val_loss"])
                rows[net][f"{preset}_test"] = run.data.metrics.get(f"test_catalogue_{net}_{m}", float("nan"))
                if this_test is not None and run.info.run_id == this_run and net in this_test:
                    rows[net][f"{preset}_test"] = this_test[net]
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "network"
    return df, found


def loss_histories(client, parent_run_id: str) -> dict:
    """{network: {train_loss: [...], val_loss: [...]}} per epoch, from the nested runs' metric history."""
    out = {}
    exp = client.get_run(parent_run_id).info.experiment_id
    children = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    for r in children:
        name = r.data.tags.get("mlflow.runName", r.info.run_id)
        h = {}
        for key in ("train_loss", "val_loss"):
            hist = sorted(client.get_metric_history(r.info.run_id, key), key=lambda m: m.step)
            if hist:
                h[key] = [m.value for m in hist]
        if h:
            out[name] = h
    return out


def flat_metrics(metrics: dict) -> dict[str, float]:
    """The finite scalar metrics of an evaluation, flattened for MLflow
    (``eval_<estimator>_<labels>_<quantity>``, e.g. ``eval_network_truth_redshift_sigma_nmad``)."""
    out = {}

    def add(prefix, d):
        for k, v in d.items():
            if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
                if np.isfinite(v):
                    out[f"{prefix}_{k}"] = float(v)

    for src, blocks in metrics.get("network", {}).items():
        for name, b in blocks.items():
            if name == "thesis_metrics":
                add(f"eval_network_{src}_thesis", b)
            else:
                add(f"eval_network_{src}_{name}", b["overall"])
    add("eval_sed", (metrics.get("sed") or {}).get("summary") or {})
    base = metrics.get("baseline") or {}
    for est in ("bpz", "network"):
        for src, b in (base.get(est) or {}).items():
            if src == "timing":
                add(f"eval_same_objects_{est}", {"objects_per_s": b.get("objects_per_s", float("nan"))})
            else:
                add(f"eval_same_objects_{est}_{src}_redshift", b["redshift"]["overall"])
    if base:
        add("eval", {"throughput_ratio": base.get("throughput_ratio", float("nan"))})
    add("eval", {"n_test": metrics["data"]["n_test"]})
    return out


def log_to_run(run_id: str, out_dir: Path, name: str, flat: dict) -> None:
    """Log ``flat`` as metrics of ``run_id``, the directory ``out_dir`` as its artifacts
    ``evaluation/<name>/`` and the tag ``evaluation_report`` pointing at the report in them."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    now = int(time.time() * 1000)
    items = [Metric(k[:250], v, now, 0) for k, v in flat.items()]
    for s in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[s:s + 500])
    client.log_artifacts(run_id, str(out_dir), f"evaluation/{name}")
    client.set_tag(run_id, "evaluation_report", f"evaluation/{name}/report.html")


def log_evaluation(metrics: dict, out_dir: Path, name: str) -> int:
    """Log a written evaluation report (``out_dir``) and its scalar metrics to the run of the model
    that produced the scores; returns how many metrics were logged."""
    flat = flat_metrics(metrics)
    log_to_run(metrics["data"]["model_run_id"], out_dir, name, flat)
    return len(flat)
