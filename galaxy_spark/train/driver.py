"""Training driver: Spark reads the catalogue, the driver fits the four networks of a preset,
corrects their slope bias on the validation split, logs everything to MLflow (one parent run,
one nested run per network) and registers the four as one pyfunc ensemble.

Split by ID hash (features.assign_split): test = the first 20% of hash space for every preset;
never used for fitting, early stopping or calibration.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.evaluate import metrics as M
from galaxy_spark.model.ensemble import Calibration, DenseStack, Ensemble, Network, OUTPUT_COLUMNS
from galaxy_spark.errors import InputError
from galaxy_spark.features import (SELECTION_SPLIT, TARGETS, TRUTH_COLUMNS, assign_split, build_features,
                                   build_targets, id_hash_unit, make_feature_spec)
from galaxy_spark.model.nets import build_network, extract_layers, load_preset, z_bin_centres
from galaxy_spark.survey import REPO_ROOT, Survey, load_survey

MANIFEST_NAME = "_manifest.json"
EPOCH_METRIC_SAMPLE = 20000      # rows used for the per-epoch train/validation metric
SELECTION_KEYS = {               # champion vs challenger: lower/higher is better
    "sel_redshift_sigma_nmad": "lower", "sel_stellarity_balanced_accuracy": "higher",
    "sel_spectral_type_nmad": "lower", "sel_stellar_mass_nmad": "lower",
}


@dataclass
class TrainOptions:
    catalog: str
    preset: str = "default"
    experiment: str = "galaxy-properties"
    register: str | None = "galaxy-ensemble"
    max_epochs: int | None = None
    sample_fraction: float = 1.0
    label_source: str = "catalogue"
    promote: bool = False
    seed: int = 42
    survey: str = "alhambra"
    spec: str | None = None             # spectroscopic sample (CSV/Parquet: ID, z_spec, …)
    spec_min_quality: int = 3


# What each network learns from, per label mode (phases in order; the last one is calibrated).
# Spectroscopy measures redshift and class only: type and mass always come from the catalogue
# (or the truth in simulation studies).
LABEL_PHASES = {
    "catalogue": {"redshift": ("catalogue",), "stellarity": ("catalogue",),
                  "spectral_type": ("catalogue",), "stellar_mass": ("catalogue",)},
    "spec": {"redshift": ("spec",), "stellarity": ("spec",),
             "spectral_type": ("catalogue",), "stellar_mass": ("catalogue",)},
    "spec+catalogue": {"redshift": ("catalogue", "spec"), "stellarity": ("catalogue", "spec"),
                       "spectral_type": ("catalogue",), "stellar_mass": ("catalogue",)},
    "truth": {"redshift": ("truth",), "stellarity": ("truth",),
              "spectral_type": ("truth",), "stellar_mass": ("truth",)},
}
LABEL_SOURCES = tuple(LABEL_PHASES)
DEFAULT_FINETUNE = {"epochs": 40, "lr_factor": 0.1, "patience": 6}


@dataclass
class NetResult:
    name: str
    history: dict
    seconds: float
    table: dict = field(default_factory=dict)


# ---- data -------------------------------------------------------------------------------
def catalogue_fingerprint(catalog: str) -> str:
    """sha256 of the ingest manifest (or of the file listing when there is none)."""
    p = Path(catalog)
    man = p / MANIFEST_NAME
    h = hashlib.sha256()
    if man.exists():
        h.update(man.read_bytes())
    else:
        for f in sorted(p.rglob("*.parquet")):
            h.update(f"{f.relative_to(p)}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def read_catalogue(spark, catalog: str, columns: list[str]) -> pd.DataFrame:
    if not Path(catalog).exists():
        raise InputError(f"catalogue not found: {catalog} (run jobs/ingest.py first)")
    df = spark.read.parquet(catalog)
    present = set(df.columns)
    missing = [c for c in columns if c not in present]
    if missing:
        raise InputError(f"catalogue {catalog} lacks column(s) needed for training: {', '.join(missing[:8])}")
    return df.select(*columns).toPandas()


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


# ---- targets per network ----------------------------------------------------------------
def soft_z_labels(z: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smeared one-hot targets over redshift bins (width sigma·(1+z), at least half a bin)."""
    width = centres[1] - centres[0]
    s = np.maximum(sigma * (1 + z), width / 2)[:, None]
    w = np.exp(-0.5 * ((centres[None, :] - z[:, None]) / s) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32)


def network_target(name: str, cfg: dict, y: np.ndarray):
    if cfg["kind"] == "pdf":
        return soft_z_labels(y, z_bin_centres(cfg), cfg.get("label_smoothing_sigma", 0.0))
    if cfg["kind"] == "classifier":
        return np.eye(2, dtype=np.float32)[y.astype(int)]
    return y.astype(np.float32)[:, None]


def point_prediction(cfg: dict, out: np.ndarray) -> np.ndarray:
    """The uncalibrated point estimate of a network output (pdf → median)."""
    from galaxy_spark.model.ensemble import pdf_quantiles

    if cfg["kind"] == "pdf":
        return pdf_quantiles(out, z_bin_centres(cfg), [0.5])[:, 0]
    if cfg["kind"] == "classifier":
        return out[:, 1]
    return out[:, 0]


def score_metric(cfg: dict, pred: np.ndarray, true: np.ndarray) -> tuple[str, float]:
    """The thesis' metric: accuracy for the classifier, r² for the rest."""
    if cfg["kind"] == "classifier":
        return "accuracy", M.classification_metrics(true, pred)["accuracy"]
    return "r2", M.regression_metrics(pred, true)["r2"]


def balanced_class_weights(y: np.ndarray) -> dict[int, float]:
    counts = np.bincount(y.astype(int), minlength=2).astype(float)
    return {i: float(len(y) / (2 * max(c, 1))) for i, c in enumerate(counts)}


def class_weight_logit_offset(weights: dict[int, float] | None) -> float:
    """Training with class weights w_c multiplies the posterior odds by w1/w0; this undoes it."""
    return 0.0 if not weights else float(np.log(weights[0] / weights[1]))


# ---- one network --------------------------------------------------------------------------
def fit_network(name: str, cfg: dict, x_tr, y_tr, x_va, y_va, max_epochs: int | None, seed: int,
                normalise: bool, log_fn=None, model=None, finetune: dict | None = None, epoch_offset: int = 0):
    """Train one network of a preset; returns (Keras model, per-epoch history).

    With `model` and `finetune` ({epochs, lr_factor, patience}) an already trained network
    (pretrained on the catalogue labels of every object) continues on new labels — a small
    spectroscopic sample — at a fraction of the learning rate, with early stopping on them.
    `epoch_offset` continues the MLflow step numbering of the pretraining."""
    import keras

    from galaxy_spark.model.nets import compile_network

    keras.utils.set_random_seed(seed)
    if model is None:
        mean = x_tr.mean(axis=0) if normalise else None
        var = x_tr.var(axis=0) if normalise else None
        model = build_network(cfg, x_tr.shape[1], mean, var, name=name)
    else:
        compile_network(model, cfg, model.loss, finetune["lr_factor"])
    t_tr, t_va = network_target(name, cfg, y_tr), network_target(name, cfg, y_va)
    rng = np.random.default_rng(seed)
    sub_tr = rng.choice(len(x_tr), min(EPOCH_METRIC_SAMPLE, len(x_tr)), replace=False)
    sub_va = rng.choice(len(x_va), min(EPOCH_METRIC_SAMPLE, len(x_va)), replace=False)
    history: dict[str, list] = {}

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"train_loss": float(logs.get("loss", np.nan)), "val_loss": float(logs.get("val_loss", np.nan))}
            for split, xs, ys in (("train", x_tr[sub_tr], y_tr[sub_tr]), ("val", x_va[sub_va], y_va[sub_va])):
                out = np.asarray(self.model(xs, training=False))
                mname, v = score_metric(cfg, point_prediction(cfg, out), ys)
                row[f"{split}_{mname}"] = float(v)
            for k, v in row.items():
                history.setdefault(k, []).append(v)
            if log_fn:
                log_fn(row, epoch + epoch_offset)

    callbacks = [EpochMetrics()]
    if finetune is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=finetune["patience"], restore_best_weights=True))
    elif cfg.get("early_stopping"):
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg["early_stopping"].get("patience", 5), restore_best_weights=True))
    if cfg.get("reduce_lr") and finetune is None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", patience=cfg["reduce_lr"].get("patience", 2),
            factor=cfg["reduce_lr"].get("factor", 0.3), min_lr=1e-5))
    class_weight = balanced_class_weights(y_tr) if cfg["kind"] == "classifier" and cfg.get("class_weight") == "balanced" else None
    epochs = finetune["epochs"] if finetune is not None else cfg["epochs"]
    epochs = epochs if max_epochs is None else min(epochs, max_epochs)
    print(f"\n== {name}{' (fine-tuning)' if finetune else ''}: {len(x_tr):,} train / {len(x_va):,} "
          f"validation rows, up to {epochs} epochs", flush=True)
    model.fit(x_tr, t_tr, validation_data=(x_va, t_va), epochs=epochs, batch_size=cfg["batch_size"],
              callbacks=callbacks, class_weight=class_weight, verbose=2, shuffle=True)
    return model, history


def architecture_params(cfg: dict, n_inputs: int) -> dict:
    layers = ([f"input {n_inputs} {cfg['input_layer'].get('activation', 'linear')}"] if cfg.get("input_layer") else [])
    layers += [f"{h['units']} {h.get('activation', 'linear')}" + (f" drop{h['dropout']}" if h.get("dropout") else "")
               for h in cfg["hidden"]]
    out = (f"{cfg['z_bins']['count']} softmax p(z)" if cfg["kind"] == "pdf"
           else f"{cfg['output']['units']} {cfg['output'].get('activation', 'linear')}")
    return {"kind": cfg["kind"], "inputs": n_inputs, "layers": " | ".join(layers + [out]),
            "optimizer": json.dumps(cfg["optimizer"]), "loss": cfg.get("loss", "categorical_crossentropy (soft z bins)"),
            "epochs": cfg["epochs"], "batch_size": cfg["batch_size"], "l2": cfg.get("l2", 0),
            "class_weight": cfg.get("class_weight", "none")}


# ---- evaluation on a split ---------------------------------------------------------------
def field_metrics(pred: pd.DataFrame, targets: dict[str, np.ndarray], galaxy: np.ndarray) -> dict:
    """Field-standard metrics of ensemble outputs against one label set."""
    out = {}
    z = M.photoz_metrics(pred["z_phot"].to_numpy()[galaxy], targets["redshift"][galaxy])
    out.update({f"redshift_{k}": z[k] for k in ("sigma_nmad", "bias", "outlier_frac", "outlier_frac_rail", "n")})
    out["redshift_r2"] = M.regression_metrics(pred["z_phot"].to_numpy()[galaxy], targets["redshift"][galaxy])["r2"]
    cov = M.interval_coverage(targets["redshift"][galaxy], pred["z_phot_lo68"].to_numpy()[galaxy],
                              pred["z_phot_hi68"].to_numpy()[galaxy], pred["z_phot_lo95"].to_numpy()[galaxy],
                              pred["z_phot_hi95"].to_numpy()[galaxy])
    out.update({f"redshift_{k}": cov[k] for k in ("coverage68", "coverage95") if k in cov})
    s = M.classification_metrics(targets["stellarity"], pred["p_star"].to_numpy())
    out.update({f"stellarity_{k}": s[k] for k in ("purity", "completeness", "roc_auc", "balanced_accuracy", "accuracy")})
    for name, col in (("spectral_type", "spectral_type"), ("stellar_mass", "log_stellar_mass")):
        r = M.regression_metrics(pred[col].to_numpy()[galaxy], targets[name][galaxy])
        out.update({f"{name}_{k}": r[k] for k in ("nmad", "bias", "std", "r2", "slope")})
    return out


def spec_metrics(pred: pd.DataFrame, spec_targets: dict[str, np.ndarray]) -> dict:
    """Redshift metrics against z_spec (spectroscopic galaxies) and star/galaxy metrics against
    the spectroscopic classes — what a user can measure on real data."""
    zs = np.isfinite(spec_targets["redshift"])
    out = {"redshift_n": int(zs.sum())}
    if zs.any():
        z = M.photoz_metrics(pred["z_phot"].to_numpy()[zs], spec_targets["redshift"][zs])
        out.update({f"redshift_{k}": z[k] for k in ("sigma_nmad", "bias", "outlier_frac")})
        cov = M.interval_coverage(spec_targets["redshift"][zs], pred["z_phot_lo68"].to_numpy()[zs],
                                  pred["z_phot_hi68"].to_numpy()[zs], pred["z_phot_lo95"].to_numpy()[zs],
                                  pred["z_phot_hi95"].to_numpy()[zs])
        out.update({f"redshift_{k}": cov[k] for k in ("coverage68", "coverage95") if k in cov})
    cls = np.isfinite(spec_targets["stellarity"])
    if cls.any() and len(np.unique(spec_targets["stellarity"][cls])) == 2:
        c = M.classification_metrics(spec_targets["stellarity"][cls], pred["p_star"].to_numpy()[cls])
        out.update({f"stellarity_{k}": c[k] for k in ("purity", "completeness", "roc_auc", "balanced_accuracy")})
    return out


def selection_metrics(ensemble: Ensemble, x, ok, targets, galaxy, spec_targets: dict | None = None) -> dict:
    """The four numbers champion and challenger are compared on (validation-side region): type
    and mass against the catalogue; redshift and class against the spectroscopic sample when
    given (else the catalogue)."""
    pred = ensemble.predict_features(x, ok)
    fm = field_metrics(pred, targets, galaxy)
    out = {"sel_redshift_sigma_nmad": fm["redshift_sigma_nmad"],
           "sel_stellarity_balanced_accuracy": fm["stellarity_balanced_accuracy"],
           "sel_spectral_type_nmad": fm["spectral_type_nmad"], "sel_stellar_mass_nmad": fm["stellar_mass_nmad"]}
    if spec_targets is not None:
        sm = spec_metrics(pred, spec_targets)
        out["sel_redshift_sigma_nmad"] = sm.get("redshift_sigma_nmad", np.nan)
        out["sel_stellarity_balanced_accuracy"] = sm.get("stellarity_balanced_accuracy", np.nan)
    return out


def is_better(new: dict, old: dict) -> bool:
    """Better on at least 3 of the 4 selection metrics (a missing old metric counts as a win)."""
    wins = 0
    for k, direction in SELECTION_KEYS.items():
        a, b = new.get(k, np.nan), old.get(k, np.nan)
        if not np.isfinite(b) or (np.isfinite(a) and ((a < b) if direction == "lower" else (a > b))):
            wins += 1
    return wins >= 3


# ---- results table ------------------------------------------------------------------------
def results_table(results: list[NetResult]) -> pd.DataFrame:
    return pd.DataFrame([{"network": r.name, **r.table} for r in results]).set_index("network")


def format_table(df: pd.DataFrame) -> str:
    """Networks as columns, quantities as rows: readable in a terminal and in markdown."""
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    return df.T.map(fmt).to_string()


# ---- the driver -----------------------------------------------------------------------------
def train(opts: TrainOptions, spark) -> dict:
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from galaxy_spark.model.pyfunc import ARTIFACT_KEY, GalaxyEnsembleModel
    from galaxy_spark.report.training_plots import curves, pred_vs_true

    t_start = time.time()
    survey: Survey = load_survey(opts.survey)
    preset = load_preset(opts.preset)
    if opts.label_source not in LABEL_SOURCES:
        raise InputError(f"--labels must be one of {', '.join(LABEL_SOURCES)}, got {opts.label_source!r}")
    if "spec" in opts.label_source and not opts.spec:
        raise InputError(f"--labels {opts.label_source} needs --spec PATH (a spectroscopic sample: ID, z_spec, "
                         "optional spec_class and z_spec_quality; the mock writes <catalogue>.specz.csv)")
    if not 0 < opts.sample_fraction <= 1:
        raise InputError(f"--sample-fraction must be in (0, 1], got {opts.sample_fraction}")
    spec = make_feature_spec(preset["features"], survey)
    label_cols = [survey.labels[t] for t in TARGETS]
    truth_cols = [TRUTH_COLUMNS[t] for t in TARGETS]
    catalogue_cols = set(spark.read.parquet(opts.catalog).columns) if Path(opts.catalog).exists() else set()
    has_truth = all(c in catalogue_cols for c in truth_cols)
    if opts.label_source == "truth" and not has_truth:
        raise InputError("--labels truth needs the mock's truth columns, which this catalogue lacks")
    columns = list(dict.fromkeys([survey.id_column, "Field"] + spec.required_columns() + label_cols
                                 + (truth_cols if has_truth else [])))
    t0 = time.time()
    df = read_catalogue(spark, opts.catalog, columns)
    print(f"read {len(df):,} catalogue rows in {time.time() - t0:.1f}s", flush=True)
    if df.empty:
        raise InputError(f"catalogue {opts.catalog} has no rows")

    ids = df[survey.id_column].to_numpy(np.int64)
    split_frac = preset["split"]
    split = assign_split(ids, split_frac["train"] * opts.sample_fraction, split_frac["validation"])
    x, ok = build_features(df, spec)
    label_sets = {"catalogue": build_targets(df, survey, "catalogue")}
    if has_truth:
        label_sets["truth"] = build_targets(df, survey, "truth")
    spec_report = None
    if opts.spec:
        label_sets["spec"], spec_report = spec_label_set(ids, opts.spec, survey, opts.spec_min_quality)
        print(f"spectroscopic sample {opts.spec}: {json.dumps(spec_report)}", flush=True)
    cat_targets, truth_targets = label_sets["catalogue"], label_sets.get("truth")
    phases = LABEL_PHASES[opts.label_source]
    finetune = {**DEFAULT_FINETUNE, **(preset.get("finetune") or {})}

    def galaxies(source: str) -> np.ndarray:
        if preset["regress_on"] != "galaxies":
            return np.ones(len(df), bool)
        return label_sets[source]["stellarity"] == 0

    counts = {s: int((split == s).sum()) for s in ("train", "validation", "test", "unused")}
    print("split by ID hash:", counts, f"(unscorable rows: {int((~ok).sum())})", flush=True)

    mlflow.set_experiment(opts.experiment)
    results: list[NetResult] = []
    networks: dict[str, Network] = {}
    with mlflow.start_run(run_name=f"train-{preset['name']}") as parent:
        mlflow.log_params({
            "preset": preset["name"], "survey": survey.name, "features": spec.kind, "n_features": len(spec.names),
            "label_source": opts.label_source, "train_fraction": split_frac["train"],
            "validation_fraction": split_frac["validation"], "test_fraction": 0.2,
            "sample_fraction": opts.sample_fraction, "seed": opts.seed, "max_epochs": opts.max_epochs,
            "regress_on": preset["regress_on"], "slope_correction_degree": preset["slope_correction"]["degree"],
            "slope_correction_method": preset["slope_correction"].get("method", "target_on_prediction"),
            "catalogue": str(opts.catalog), "catalogue_fingerprint": catalogue_fingerprint(opts.catalog),
            "git_commit": git_commit(), "split_method": "splitmix64(ID) -> [0,1): test [0,0.2), "
            "validation [0.2, 0.2+f), train [0.3, 0.3+f)",
            "selection_labels": "spec" if "spec" in label_sets else "catalogue",
            "spec_sample": str(opts.spec or ""), "spec_min_quality": opts.spec_min_quality,
            **({f"spec_{k}": v for k, v in spec_report.items() if isinstance(v, (int, float))} if spec_report else {}),
            **{f"n_{k}": v for k, v in counts.items()},
        })
        mlflow.set_tag("preset", preset["name"])
        artifacts = Path(tempfile.mkdtemp(prefix="galaxy_spark_train_"))
        for name in TARGETS:
            cfg = preset["networks"][name]
            with mlflow.start_run(run_name=name, nested=True):
                mlflow.log_params({"network": name, "labels": " -> ".join(phases[name]),
                                   **architecture_params(cfg, x.shape[1])})
                t0 = time.time()
                model, hist = None, {}
                # pretrain on the catalogue labels of every object, then (spec modes) fine-tune
                for phase, source in enumerate(phases[name]):
                    y = label_sets[source][name]
                    use = ok & np.isfinite(y) & (galaxies(source) if name != "stellarity" else True)
                    tr, va = use & (split == "train"), use & (split == "validation")
                    if tr.sum() < 10 or va.sum() < 5:
                        raise InputError(f"{name}: too few {source}-labelled rows to train ({int(tr.sum())} "
                                         f"train, {int(va.sum())} validation); use a larger catalogue or sample")
                    mlflow.log_params({f"n_train_{source}": int(tr.sum()), f"n_validation_{source}": int(va.sum())})
                    model, h = fit_network(
                        name, cfg, x[tr], y[tr], x[va], y[va], opts.max_epochs, opts.seed,
                        normalise=spec.kind != "thesis", model=model, finetune=finetune if phase else None,
                        epoch_offset=len(hist.get("train_loss", [])),
                        log_fn=lambda row, epoch: mlflow.log_metrics(
                            {k: v for k, v in row.items() if np.isfinite(v)}, step=epoch + 1))
                    for k, v in h.items():
                        hist.setdefault(k, []).extend(v)
                seconds = time.time() - t0
                norm, dense = extract_layers(model)
                stack = DenseStack(dense, norm)
                # NumPy evaluation must reproduce Keras; check on a sample before trusting it.
                probe = x[va][:256]
                diff = float(np.max(np.abs(stack(probe) - np.asarray(model(probe, training=False)))))
                if diff > 1e-4:
                    raise RuntimeError(f"{name}: NumPy evaluation differs from Keras by {diff:g}")
                raw_tr = point_prediction(cfg, stack(x[tr]))
                raw_va = point_prediction(cfg, stack(x[va]))
                net = Network(name, cfg["kind"], stack, Calibration.identity(),
                              z_bin_centres(cfg) if cfg["kind"] == "pdf" else None)
                if cfg["kind"] == "classifier" and cfg.get("class_weight") == "balanced":
                    net.logit_offset = class_weight_logit_offset(balanced_class_weights(y[tr]))
                    raw_tr, raw_va = net.positive_probability(x[tr]), net.positive_probability(x[va])
                mname, _ = score_metric(cfg, raw_va, y[va])
                row = {"metric": mname, "epochs_run": len(hist.get("train_loss", [])), "seconds": round(seconds, 1),
                       "initial_train_loss": hist["train_loss"][0], "final_train_loss": hist["train_loss"][-1],
                       "initial_val_loss": hist["val_loss"][0], "final_val_loss": hist["val_loss"][-1],
                       "initial_train_score": hist[f"train_{mname}"][0], "final_train_score": score_metric(cfg, raw_tr, y[tr])[1],
                       "initial_val_score": hist[f"val_{mname}"][0], "final_val_score": score_metric(cfg, raw_va, y[va])[1]}
                if cfg["kind"] != "classifier":
                    sc = preset["slope_correction"]
                    net.calibration = Calibration.fit(raw_va, y[va], sc.get("degree", 1),
                                                      sc.get("method", "target_on_prediction"))
                    cal_va = net.calibration.apply(raw_va)
                    before, after = M.regression_metrics(raw_va, y[va]), M.regression_metrics(cal_va, y[va])
                    row.update(val_slope_before=before["slope"], val_slope_after=after["slope"],
                               val_rmse_before=before["rmse"], val_rmse_after=after["rmse"])
                    net.scatter = after["nmad"]
                    if name == "redshift" and cfg["kind"] != "pdf":
                        e = M.ez(cal_va, y[va])
                        net.residual_quantiles = {k: float(np.nanpercentile(e, q)) for k, q in
                                                  (("q16", 16), ("q84", 84), ("q02.5", 2.5), ("q97.5", 97.5))}
                    pred_vs_true(y[va], {"before correction": raw_va, "after correction": cal_va},
                                 name.replace("_", " "), artifacts / f"{name}_pred_vs_true.png")
                    mlflow.log_artifact(str(artifacts / f"{name}_pred_vs_true.png"), "plots")
                curves(hist, [("train_loss", "train"), ("val_loss", "validation")], f"{name}: loss", "loss",
                       artifacts / f"{name}_loss.png")
                curves(hist, [(f"train_{mname}", "train"), (f"val_{mname}", "validation")], f"{name}: {mname}",
                       mname, artifacts / f"{name}_{mname}.png")
                mlflow.log_artifact(str(artifacts / f"{name}_loss.png"), "plots")
                mlflow.log_artifact(str(artifacts / f"{name}_{mname}.png"), "plots")
                mlflow.log_metrics({k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and np.isfinite(v)})
                networks[name] = net
                results.append(NetResult(name, hist, seconds, row))
                print(f"   {name}: {row}", flush=True)

        ensemble = Ensemble(spec, networks, {"preset": preset["name"], "survey": survey.name,
                                             "label_source": opts.label_source, "training_run_id": parent.info.run_id})
        # Field metrics on the held-out test split, with the exact predict path scoring uses.
        test = split == "test"
        pred_test = ensemble.predict_features(x[test], ok[test])
        tgal = (cat_targets["stellarity"][test] == 0)
        test_metrics = {"catalogue": field_metrics(pred_test, {k: v[test] for k, v in cat_targets.items()}, tgal)}
        if truth_targets is not None:
            truth_gal = truth_targets["stellarity"][test] == 0
            test_metrics["truth"] = field_metrics(pred_test, {k: v[test] for k, v in truth_targets.items()}, truth_gal)
        if "spec" in label_sets:
            test_metrics["spec"] = spec_metrics(pred_test, {k: v[test] for k, v in label_sets["spec"].items()})
        for src, mets in test_metrics.items():
            mlflow.log_metrics({f"test_{src}_{k}": float(v) for k, v in mets.items() if np.isfinite(v)})
        # Selection metrics (champion vs challenger) on the fixed selection region: redshift and
        # class against the spectroscopic sample when there is one, else the catalogue labels.
        u = id_hash_unit(ids)
        sel = (u >= SELECTION_SPLIT[0]) & (u < SELECTION_SPLIT[1])
        sel_metrics = selection_metrics(ensemble, x[sel], ok[sel], {k: v[sel] for k, v in cat_targets.items()},
                                        cat_targets["stellarity"][sel] == 0,
                                        {k: v[sel] for k, v in label_sets["spec"].items()} if "spec" in label_sets
                                        else None)
        mlflow.log_metrics({k: float(v) for k, v in sel_metrics.items() if np.isfinite(v)})

        table = results_table(results)
        table_txt = format_table(table)
        tests_df = pd.DataFrame(test_metrics)
        tests_txt = tests_df.to_string(float_format=lambda v: f"{v:.4f}")
        (artifacts / "results_table.md").write_text(
            f"# Results: preset {preset['name']}\n\n## Networks (thesis form)\n\n{table_txt}\n\n"
            f"## Test split ({int(test.sum()):,} objects)\n\n```\n{tests_txt}\n```\n")
        table.to_csv(artifacts / "results_table.csv")
        tests_df.to_csv(artifacts / "test_metrics.csv")
        for f in ("results_table.md", "results_table.csv", "test_metrics.csv"):
            mlflow.log_artifact(str(artifacts / f), "results")
        print(f"\nResults (preset {preset['name']}):\n{table_txt}\n\nTest split:\n{tests_txt}\n", flush=True)

        # The ensemble as one pyfunc model with an explicit signature.
        ens_dir = ensemble.save(artifacts / "ensemble")
        in_cols = []
        for c in spec.required_columns():
            in_cols.append(ColSpec("integer" if c.endswith("_state") else "double", c))
        out_cols = [ColSpec("boolean" if c == "scorable" else "double", c) for c in OUTPUT_COLUMNS]
        signature = ModelSignature(inputs=Schema(in_cols), outputs=Schema(out_cols))
        info = mlflow.pyfunc.log_model(
            name="ensemble", python_model=GalaxyEnsembleModel(), artifacts={ARTIFACT_KEY: str(ens_dir)},
            signature=signature, registered_model_name=opts.register or None,
            pip_requirements=_requirements(),
        )
        registered = None
        if opts.register:
            registered = _set_alias(opts.register, info.registered_model_version, sel_metrics, opts.promote,
                                    "spec" if "spec" in label_sets else "catalogue")
            mlflow.set_tag("registered_alias", registered["alias"])
        mlflow.log_metric("total_seconds", time.time() - t_start)
    return {"run_id": parent.info.run_id, "model_uri": info.model_uri, "table": table,
            "test_metrics": test_metrics, "selection_metrics": sel_metrics, "registered": registered,
            "seconds": {r.name: r.seconds for r in results}, "total_seconds": time.time() - t_start}


def spec_label_set(ids: np.ndarray, path: str, survey: Survey, min_quality: int) -> tuple[dict, dict]:
    """Targets from a spectroscopic sample aligned with the catalogue `ids`: redshift for secure
    (quality >= min_quality) galaxies, class (star 1 / galaxy 0) for secure objects, NaN elsewhere
    and for type and mass (which spectroscopy does not measure). Returns (targets, report)."""
    from galaxy_spark.catalog.spec import join_spec, read_spec

    table, report = read_spec(path, survey)
    aligned, joined = join_spec(ids, table)
    report = {**report, **joined}
    q = np.asarray(aligned["z_spec_quality"], float)
    good = np.isfinite(q) & (q >= min_quality)
    star = np.asarray(aligned["spec_class"] == "star")
    z = np.asarray(aligned["z_spec"], float)
    report["secure"] = int(good.sum())
    nan = np.full(len(ids), np.nan)
    return {"redshift": np.where(good & ~star, z, np.nan), "stellarity": np.where(good, star.astype(float), np.nan),
            "spectral_type": nan.copy(), "stellar_mass": nan.copy()}, report


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("numpy", "pandas", "mlflow")]


def _set_alias(name: str, version: str | int, sel: dict, promote: bool, sel_labels: str = "catalogue") -> dict:
    """First version → champion; later ones take champion only when better on the selection
    metrics measured against the same labels (or --promote): a catalogue emulator is never
    promoted over a spectroscopically selected champion by numbers measured on other labels."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(version)
    try:
        champ = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        champ = None
    reason = "first version"
    if champ is not None:
        champ_run = client.get_run(champ.run_id).data
        old = champ_run.metrics
        comparable = champ_run.params.get("selection_labels", "catalogue") == sel_labels
        better = comparable and is_better(sel, old)
        if not (better or promote):
            client.set_registered_model_alias(name, "challenger", version)
            print(f"registered {name} version {version} as challenger (champion v{champ.version} is better "
                  f"on the selection metrics)", flush=True)
            return {"name": name, "version": version, "alias": "challenger"}
        reason = "--promote" if promote and not better else "better on the selection metrics"
    client.set_registered_model_alias(name, "champion", version)
    print(f"registered {name} version {version} as champion ({reason})", flush=True)
    return {"name": name, "version": version, "alias": "champion"}

