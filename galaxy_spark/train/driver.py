"""Training driver: Spark reads the catalogue, the driver fits the preset's network for each head
of the head table (model/heads.py; the SED network when the preset has one),
corrects their slope bias on the validation split, logs everything to MLflow (one parent run,
one nested run per network) and registers them as one pyfunc ensemble.

The steps of `train`, in order: check the options, read the training data (train/data.py), log
the run's parameters, fit and calibrate each network (train/fit.py), measure the ensemble on the
test split and the selection region (train/heldout.py), write the results tables, log the
pyfunc model, set its registry alias (train/champion.py) and describe it in the registry
(model/registry.py).
"""
from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark.features import make_feature_spec
from galaxy_spark.model.heads import OPTIONAL_HEADS, REQUIRED_HEADS
from galaxy_spark.model.ensemble import Ensemble
from galaxy_spark.model.nets import load_preset
from galaxy_spark.model.registry import describe_version
from galaxy_spark.model.tracking import use_experiment
from galaxy_spark.io.manifest import catalogue_survey
from galaxy_spark.train.champion import selection_metrics, set_alias
from galaxy_spark.train.data import LABEL_PHASES, LABEL_SOURCES, SPLIT_DESCRIPTION, TrainingData, \
    catalogue_fingerprint, load_training_data
from galaxy_spark.train.fit import FittedNetwork, fit_and_calibrate
from galaxy_spark.train.heldout import field_metrics, spec_metrics
from galaxy_spark.log import get_logger

log = get_logger(__name__)

DEFAULT_FINETUNE = {"epochs": 40, "lr_factor": 0.1, "patience": 6}
TEST_FRACTION = 0.2


@dataclass
class TrainOptions:
    """What jobs/train.py passes to `train` (its command-line flags)."""
    catalog: str
    preset: str = "default"
    experiment: str = "galaxy-properties"
    register: str | None = "galaxy-ensemble"
    max_epochs: int | None = None
    sample_fraction: float = 1.0
    label_source: str = "catalogue"
    promote: bool = False
    seed: int = 42
    survey: str | None = None          # a survey name or file; None: pipeline.yaml's
    spec: str | None = None             # spectroscopic sample (CSV/Parquet: ID, z_spec, …)
    spec_min_quality: int = 3


def git_commit() -> str:
    """The commit of the checkout this package runs from ('unknown' outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def architecture_params(cfg: dict, n_inputs: int) -> dict:
    """A network's architecture and training settings as MLflow parameters (layers as one line)."""
    layers = ([f"input {n_inputs} {cfg['input_layer'].get('activation', 'linear')}"] if cfg.get("input_layer") else [])
    layers += [f"{h['units']} {h.get('activation', 'linear')}" + (f" drop{h['dropout']}" if h.get("dropout") else "")
               for h in cfg["hidden"]]
    out = (f"{cfg['z_bins']['count']} softmax p(z)" if cfg["kind"] == "pdf"
           else f"{cfg['output']['units']} {cfg['output'].get('activation', 'linear')}")
    return {"kind": cfg["kind"], "inputs": n_inputs, "layers": " | ".join(layers + [out]),
            "optimizer": json.dumps(cfg["optimizer"]), "loss": cfg.get("loss", "categorical_crossentropy (soft z bins)"),
            "epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "l2": cfg.get("l2", 0),
            "class_weight": cfg.get("class_weight", "none")}


def results_table(results: dict[str, FittedNetwork]) -> pd.DataFrame:
    """One row per network (the thesis' table: epochs, losses, scores, slope correction)."""
    return pd.DataFrame([{"network": name, **r.table} for name, r in results.items()]).set_index("network")


def format_table(df: pd.DataFrame) -> str:
    """Networks as columns, quantities as rows: readable in a terminal and in markdown."""
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    return df.T.map(fmt).to_string()


# ---- the steps of train() ------------------------------------------------------------------
def check_options(opts: TrainOptions) -> None:
    """InputError for options that cannot work, before anything is read."""
    if opts.label_source not in LABEL_SOURCES:
        raise InputError(f"--labels must be one of {', '.join(LABEL_SOURCES)}, got {opts.label_source!r}")
    if "spec" in opts.label_source and not opts.spec:
        raise InputError(f"--labels {opts.label_source} needs --spec PATH (a spectroscopic sample: ID, z_spec, "
                         "optional spec_class and z_spec_quality; the mock writes <catalogue>.specz.csv)")
    if not 0 < opts.sample_fraction <= 1:
        raise InputError(f"--sample-fraction must be in (0, 1], got {opts.sample_fraction}")


def _log_run_params(opts: TrainOptions, preset: dict, survey_name: str, data: TrainingData) -> None:
    import mlflow

    split_frac, spec, report = preset["split"], data.feature_spec, data.spec_report
    mlflow.log_params({
        "preset": preset["name"], "survey": survey_name, "features": spec.kind, "n_features": len(spec.names),
        "label_source": opts.label_source, "train_fraction": split_frac["train"],
        "validation_fraction": split_frac["validation"], "test_fraction": TEST_FRACTION,
        "sample_fraction": opts.sample_fraction, "seed": opts.seed, "max_epochs": opts.max_epochs,
        "regress_on": preset["regress_on"], "slope_correction_degree": preset["slope_correction"]["degree"],
        "slope_correction_method": preset["slope_correction"].get("method", "target_on_prediction"),
        "catalogue": str(opts.catalog), "catalogue_fingerprint": catalogue_fingerprint(opts.catalog),
        "git_commit": git_commit(), "split_method": SPLIT_DESCRIPTION,
        "selection_labels": data.selection_labels,
        "spec_sample": str(opts.spec or ""), "spec_min_quality": opts.spec_min_quality,
        **({f"spec_{k}": v for k, v in report.items() if isinstance(v, (int, float))} if report else {}),
        **{f"n_{k}": v for k, v in data.counts().items()},
    })
    mlflow.set_tag("preset", preset["name"])


def _finite(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and np.isfinite(v)}


def _train_network(name: str, preset: dict, opts: TrainOptions, data: TrainingData, artifacts: Path) -> FittedNetwork:
    """One nested MLflow run: fit and calibrate network `name` through its label phases, log its
    per-epoch curves, plots and results row."""
    import mlflow

    from galaxy_spark.drawing.plots import curves, pred_vs_true

    cfg, sources = preset["networks"][name], LABEL_PHASES[opts.label_source][name]
    with mlflow.start_run(run_name=name, nested=True):
        mlflow.log_params({"network": name, "labels": " -> ".join(sources),
                           **architecture_params(cfg, data.x.shape[1])})
        fitted = fit_and_calibrate(
            name, cfg, data.x, (data.phase(name, s) for s in sources), preset["slope_correction"],
            max_epochs=opts.max_epochs, seed=opts.seed, normalise=data.feature_spec.kind != "thesis",
            finetune={**DEFAULT_FINETUNE, **(preset.get("finetune") or {})}, log_params=mlflow.log_params,
            log_epoch=lambda row, epoch: mlflow.log_metrics(_finite(row), step=epoch + 1))
        hist, m = fitted.history, fitted.metric
        plots = [artifacts / f"{name}_loss.png", artifacts / f"{name}_{m}.png"]
        if fitted.cal_va is not None:
            plots.insert(0, artifacts / f"{name}_pred_vs_true.png")
            pred_vs_true(fitted.y_va, {"before correction": fitted.raw_va, "after correction": fitted.cal_va},
                         name.replace("_", " "), plots[0])
        curves(hist, [("train_loss", "train"), ("val_loss", "validation")], f"{name}: loss", "loss", plots[-2])
        curves(hist, [(f"train_{m}", "train"), (f"val_{m}", "validation")], f"{name}: {m}", m, plots[-1])
        for p in plots:
            mlflow.log_artifact(str(p), "plots")
        mlflow.log_metrics(_finite(fitted.table))
    log.info(f"   {name}: {fitted.table}")
    return fitted


def _heldout_metrics(ensemble: Ensemble, data: TrainingData) -> tuple[dict, dict]:
    """(test metrics per label set, selection metrics), both logged to the parent run. The test
    split is scored with the exact predict path scoring uses."""
    import mlflow

    test = data.split == "test"
    pred = ensemble.predict_features(data.x[test], data.ok[test])
    cat = data.label_sets["catalogue"]
    tests = {"catalogue": field_metrics(pred, data.rows(test, "catalogue"), cat["stellarity"][test] == 0)}
    if "truth" in data.label_sets:
        tests["truth"] = field_metrics(pred, data.rows(test, "truth"), data.label_sets["truth"]["stellarity"][test] == 0)
    if "spec" in data.label_sets:
        tests["spec"] = spec_metrics(pred, data.rows(test, "spec"))
    for src, mets in tests.items():
        mlflow.log_metrics({f"test_{src}_{k}": float(v) for k, v in mets.items() if np.isfinite(v)})
    # Selection metrics (champion vs challenger) on the fixed selection region: redshift and
    # class against the spectroscopic sample when there is one, else the catalogue labels.
    sel = data.selection_region()
    sel_metrics = selection_metrics(ensemble, data.x[sel], data.ok[sel], data.rows(sel, "catalogue"),
                                    cat["stellarity"][sel] == 0,
                                    data.rows(sel, "spec") if "spec" in data.label_sets else None)
    mlflow.log_metrics({k: float(v) for k, v in sel_metrics.items() if np.isfinite(v)})
    return tests, sel_metrics


def _write_results(preset_name: str, results: dict[str, FittedNetwork], test_metrics: dict, n_test: int,
                   artifacts: Path) -> pd.DataFrame:
    """The results table (markdown + CSV) and test metrics (CSV), logged under results/ and printed."""
    import mlflow

    table = results_table(results)
    table_txt = format_table(table)
    tests_df = pd.DataFrame(test_metrics)
    tests_txt = tests_df.to_string(float_format=lambda v: f"{v:.4f}")
    (artifacts / "results_table.md").write_text(
        f"# Results: preset {preset_name}\n\n## Networks (thesis form)\n\n{table_txt}\n\n"
        f"## Test split ({n_test:,} objects)\n\n```\n{tests_txt}\n```\n")
    table.to_csv(artifacts / "results_table.csv")
    tests_df.to_csv(artifacts / "test_metrics.csv")
    for f in ("results_table.md", "results_table.csv", "test_metrics.csv"):
        mlflow.log_artifact(str(artifacts / f), "results")
    log.info(f"\nResults (preset {preset_name}):\n{table_txt}\n\nTest split:\n{tests_txt}\n")
    return table


def _log_model(ensemble: Ensemble, register: str | None, artifacts: Path):
    """Log the ensemble as one self-contained pyfunc model (weights, the code that evaluates them,
    pinned requirements: model/pyfunc.py) with an explicit signature (registered as `register`
    when given); returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from galaxy_spark.model.pyfunc import ARTIFACT_KEY, INPUT_CHECKS, GalaxyEnsembleModel, requirements, shipped_code

    ens_dir = ensemble.save(artifacts / "ensemble")
    code = shipped_code(artifacts / "code")
    # Inputs are declared optional so that the model itself checks them: MLflow's own check of a
    # missing column answers with the whole schema (thousands of characters); predict names the
    # missing columns in one line (a 400).
    in_cols = [ColSpec("integer" if c.endswith("_state") else "double", c, required=False)
               for c in ensemble.feature_spec.required_columns()]
    out_cols = [ColSpec({"int32": "integer", "float64": "double"}[c.dtype], c.name) for c in ensemble.output_table()]
    signature = ModelSignature(inputs=Schema(in_cols), outputs=Schema(out_cols))
    return mlflow.pyfunc.log_model(
        name="ensemble", python_model=GalaxyEnsembleModel(), artifacts={ARTIFACT_KEY: str(ens_dir)},
        signature=signature, registered_model_name=register or None, pip_requirements=requirements(),
        metadata={"input_checks": INPUT_CHECKS, "outputs": {c.name: f"{c.dtype}, {c.unit}: {c.description}"
                                                            for c in ensemble.output_table()}},
        code_paths=[str(code)],
    )


# ---- the driver -----------------------------------------------------------------------------
def train(opts: TrainOptions, spark) -> dict:
    """Train, track and register one ensemble (see the module docstring for the steps). Returns
    {run_id, model_uri, table, test_metrics, selection_metrics, registered, seconds (per network),
    total_seconds}. InputError for bad options or data, before anything is logged."""
    import mlflow

    t_start = time.time()
    survey = catalogue_survey(opts.catalog, opts.survey)
    preset = load_preset(opts.preset)
    check_options(opts)
    data = load_training_data(spark, opts.catalog, survey, preset, make_feature_spec(preset["features"], survey),
                              opts.label_source, opts.sample_fraction, opts.spec, opts.spec_min_quality)
    use_experiment(opts.experiment)
    with mlflow.start_run(run_name=f"train-{preset['name']}") as parent:
        _log_run_params(opts, preset, survey.name, data)
        artifacts = Path(tempfile.mkdtemp(prefix="galaxy_spark_train_"))
        names = REQUIRED_HEADS + tuple(t for t in OPTIONAL_HEADS if t in preset["networks"])
        results = {name: _train_network(name, preset, opts, data, artifacts) for name in names}
        ensemble = Ensemble(data.feature_spec, {name: r.net for name, r in results.items()},
                            {"preset": preset["name"], "survey": survey.name, "label_source": opts.label_source,
                             "training_run_id": parent.info.run_id}, sed=data.sed)
        test_metrics, sel_metrics = _heldout_metrics(ensemble, data)
        table = _write_results(preset["name"], results, test_metrics, int((data.split == "test").sum()), artifacts)
        info = _log_model(ensemble, opts.register, artifacts)
        registered = None
        if opts.register:
            registered = set_alias(opts.register, info.registered_model_version, sel_metrics, opts.promote,
                                   data.selection_labels)
            describe_version(opts.register, info.registered_model_version)
            mlflow.set_tag("registered_alias", registered["alias"])
        mlflow.log_metric("total_seconds", time.time() - t_start)
    return {"run_id": parent.info.run_id, "model_uri": info.model_uri, "table": table,
            "test_metrics": test_metrics, "selection_metrics": sel_metrics, "registered": registered,
            "seconds": {name: r.seconds for name, r in results.items()}, "total_seconds": time.time() - t_start}
