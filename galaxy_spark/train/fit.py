"""Fit one network of a preset and calibrate it: Keras training (with optional fine-tuning phases),
the NumPy copy the ensemble evaluates, the class-weight undo of the classifier and the slope
correction of the regressions. No MLflow here: the driver (train/driver.py) passes logging
callbacks; the real-data fine-tuning (train/finetune.py) reuses `fit_network` and the calibration
helpers.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from galaxy_spark.errors import InputError
from galaxy_spark import metrics as M
from galaxy_spark.model.ensemble import Calibration, DenseStack, Network
from galaxy_spark.model.heads import pdf_quantiles
from galaxy_spark.model.nets import build_network, compile_network, extract_layers, network_loss, z_bin_centres
from galaxy_spark.log import get_logger

log = get_logger(__name__)

EPOCH_METRIC_SAMPLE = 20000      # rows used for the per-epoch train/validation metric
NUMPY_TOLERANCE = 1e-4           # largest |NumPy − Keras| output difference accepted
MIN_TRAIN_ROWS, MIN_VALIDATION_ROWS = 10, 5
RESIDUAL_QUANTILES = (("q16", 16), ("q84", 84), ("q02.5", 2.5), ("q97.5", 97.5))


# ---- targets and point estimates -----------------------------------------------------------
def soft_z_labels(z: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smeared one-hot targets over redshift bins (width sigma·(1+z), at least half a bin)."""
    width = centres[1] - centres[0]
    s = np.maximum(sigma * (1 + z), width / 2)[:, None]
    w = np.exp(-0.5 * ((centres[None, :] - z[:, None]) / s) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    return w.astype(np.float32)


def network_target(name: str, cfg: dict, y: np.ndarray):
    """What a network is trained against for labels `y`: soft p(z) bins (`soft_z_labels`, smoothing
    `label_smoothing_sigma`) for a pdf network, one-hot classes (y = 0/1) for the classifier, the
    basis coefficients (n, K) for the SED network, else the label itself as a float32 column."""
    if cfg["kind"] == "sed":
        return y.astype(np.float32)
    if cfg["kind"] == "pdf":
        return soft_z_labels(y, z_bin_centres(cfg), cfg.get("label_smoothing_sigma", 0.0))
    if cfg["kind"] == "classifier":
        return np.eye(2, dtype=np.float32)[y.astype(int)]
    return y.astype(np.float32)[:, None]


def point_prediction(kind: str, out: np.ndarray, z_bins: np.ndarray | None = None) -> np.ndarray:
    """The uncalibrated point estimate of a network output: the median of p(z) (`z_bins`: bin
    centres) for a pdf network, P(class 1) for the classifier, all K coefficients for the SED
    network, the single output otherwise."""
    if kind == "sed":
        return out
    if kind == "pdf":
        return pdf_quantiles(out, z_bins, [0.5])[:, 0]
    if kind == "classifier":
        return out[:, 1]
    return out[:, 0]


def score_metric(cfg: dict, pred: np.ndarray, true: np.ndarray) -> tuple[str, float]:
    """The thesis' metric: accuracy for the classifier, r² for the rest (for the SED network over
    all its coefficients: 1 − Σ residual² / Σ (true − column mean)²)."""
    if cfg["kind"] == "classifier":
        return "accuracy", M.classification_metrics(true, pred)["accuracy"]
    if cfg["kind"] == "sed":
        ss_tot = float(((true - true.mean(axis=0)) ** 2).sum())
        return "r2", 1.0 - float(((pred - true) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    return "r2", M.regression_metrics(pred, true)["r2"]


def balanced_class_weights(y: np.ndarray) -> dict[int, float]:
    """Keras class weights n / (2 · n_class) for labels 0/1, so both classes weigh the same."""
    counts = np.bincount(y.astype(int), minlength=2).astype(float)
    return {i: float(len(y) / (2 * max(c, 1))) for i, c in enumerate(counts)}


def class_weight_logit_offset(weights: dict[int, float] | None) -> float:
    """Training with class weights w_c multiplies the posterior odds by w1/w0; this undoes it."""
    return 0.0 if not weights else float(np.log(weights[0] / weights[1]))


def residual_quantiles(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Percentiles 16, 84, 2.5, 97.5 of the redshift residuals (pred − true)/(1 + true): the
    intervals of a regression redshift network."""
    e = M.ez(pred, true)
    return {k: float(np.nanpercentile(e, q)) for k, q in RESIDUAL_QUANTILES}


# ---- Keras training --------------------------------------------------------------------------
def fit_network(name: str, cfg: dict, x_tr, y_tr, x_va, y_va, max_epochs: int | None, seed: int,
                normalise: bool, log_fn=None, model=None, finetune: dict | None = None, epoch_offset: int = 0,
                batch_size: int | None = None, verbose: int = 2, reseed: bool = True):
    """Train one network of a preset; returns (Keras model, per-epoch history: train/val loss and
    the `score_metric` of each split on up to EPOCH_METRIC_SAMPLE rows).

    With `model` and `finetune` ({epochs, lr_factor, patience}) an already trained network
    continues on new labels — a small spectroscopic or real sample — at a fraction of the
    learning rate, with early stopping on them. `epoch_offset` continues the step numbering of
    `log_fn(row, epoch)`. `batch_size` overrides the preset's; `verbose` 0 trains silently;
    `reseed=False` keeps the caller's Keras random state (it seeded before building `model`)."""
    import keras

    if reseed:
        keras.utils.set_random_seed(seed)
    if model is None:
        mean = x_tr.mean(axis=0) if normalise else None
        var = x_tr.var(axis=0) if normalise else None
        model = build_network(cfg, x_tr.shape[1], mean, var, name=name)
    else:
        compile_network(model, cfg, network_loss(cfg), finetune["lr_factor"])
    t_tr, t_va = network_target(name, cfg, y_tr), network_target(name, cfg, y_va)
    rng = np.random.default_rng(seed)
    sub_tr = rng.choice(len(x_tr), min(EPOCH_METRIC_SAMPLE, len(x_tr)), replace=False)
    sub_va = rng.choice(len(x_va), min(EPOCH_METRIC_SAMPLE, len(x_va)), replace=False)
    centres = z_bin_centres(cfg) if cfg["kind"] == "pdf" else None
    history: dict[str, list] = {}

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"train_loss": float(logs.get("loss", np.nan)), "val_loss": float(logs.get("val_loss", np.nan))}
            for split, xs, ys in (("train", x_tr[sub_tr], y_tr[sub_tr]), ("val", x_va[sub_va], y_va[sub_va])):
                out = np.asarray(self.model(xs, training=False))
                mname, v = score_metric(cfg, point_prediction(cfg["kind"], out, centres), ys)
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
    if verbose:
        log.info(f"\n== {name}{' (fine-tuning)' if finetune else ''}: {len(x_tr):,} train / {len(x_va):,} "
              f"validation rows, up to {epochs} epochs")
    model.fit(x_tr, t_tr, validation_data=(x_va, t_va), epochs=epochs, batch_size=batch_size or cfg["batch_size"],
              callbacks=callbacks, class_weight=class_weight, verbose=verbose, shuffle=True)
    return model, history


def numpy_network(name: str, cfg: dict, model, probe: np.ndarray) -> Network:
    """The trained Keras `model` as an uncalibrated ensemble `Network` (NumPy weights), after
    checking on the `probe` rows that NumPy reproduces Keras (RuntimeError otherwise)."""
    norm, dense = extract_layers(model)
    stack = DenseStack(dense, norm)
    diff = float(np.max(np.abs(stack(probe) - np.asarray(model(probe, training=False)))))
    if diff > NUMPY_TOLERANCE:
        raise RuntimeError(f"{name}: NumPy evaluation differs from Keras by {diff:g}")
    return Network(name, cfg["kind"], stack, Calibration.identity(), z_bin_centres(cfg) if cfg["kind"] == "pdf" else None)


# ---- one network, all phases, calibrated -----------------------------------------------------
@dataclass
class Phase:
    """One training phase of a network: labels `y` (NaN = none) from `source`, and the row masks
    of its training and validation rows."""
    source: str
    y: np.ndarray
    train: np.ndarray
    validation: np.ndarray

    def check(self, name: str) -> None:
        """InputError when the phase has too few rows to train a network on."""
        n_tr, n_va = int(self.train.sum()), int(self.validation.sum())
        if n_tr < MIN_TRAIN_ROWS or n_va < MIN_VALIDATION_ROWS:
            raise InputError(f"{name}: too few {self.source}-labelled rows to train ({n_tr} train, {n_va} "
                             "validation); use a larger catalogue or sample")


@dataclass
class FittedNetwork:
    """A trained, calibrated network and what the driver reports about it: the per-epoch history
    (all phases), the results-table row, training seconds, and the validation labels with the
    predictions before/after the slope correction (None for the classifier)."""
    net: Network
    history: dict
    seconds: float
    table: dict
    metric: str
    y_va: np.ndarray
    raw_va: np.ndarray
    cal_va: np.ndarray | None = None


def fit_and_calibrate(name: str, cfg: dict, x: np.ndarray, phases: Iterable[Phase], slope_correction: dict, *,
                      max_epochs: int | None, seed: int, normalise: bool, finetune: dict,
                      log_params=None, log_epoch=None) -> FittedNetwork:
    """Train network `name` on the features `x` through its label `phases` (in order: the first
    from scratch, the next ones fine-tuning with `finetune`), then turn it into a calibrated
    `Network`. Each phase is checked (enough rows) just before it trains. The last phase's validation rows fit the slope correction (`slope_correction`: degree, method)
    of a regression or pdf network; the classifier's class weights are undone instead.
    `log_params(dict)` and `log_epoch(row, step)` receive the row counts and per-epoch metrics."""
    t0 = time.time()
    model, hist = None, {}
    for i, ph in enumerate(phases):
        ph.check(name)
        tr, va = ph.train, ph.validation
        if log_params:
            log_params({f"n_train_{ph.source}": int(tr.sum()), f"n_validation_{ph.source}": int(va.sum())})
        model, h = fit_network(name, cfg, x[tr], ph.y[tr], x[va], ph.y[va], max_epochs, seed, normalise=normalise,
                               model=model, finetune=finetune if i else None,
                               epoch_offset=len(hist.get("train_loss", [])), log_fn=log_epoch)
        for k, v in h.items():
            hist.setdefault(k, []).extend(v)
    seconds = time.time() - t0
    y = ph.y
    net = numpy_network(name, cfg, model, x[va][:256])
    raw_tr, raw_va = point_prediction(cfg["kind"], net.stack(x[tr]), net.z_bins), point_prediction(
        cfg["kind"], net.stack(x[va]), net.z_bins)
    if cfg["kind"] == "classifier" and cfg.get("class_weight") == "balanced":
        net.logit_offset = class_weight_logit_offset(balanced_class_weights(y[tr]))
        raw_tr, raw_va = net.positive_probability(x[tr]), net.positive_probability(x[va])
    mname, _ = score_metric(cfg, raw_va, y[va])
    row = {"metric": mname, "epochs_run": len(hist.get("train_loss", [])), "seconds": round(seconds, 1),
           "initial_train_loss": hist["train_loss"][0], "final_train_loss": hist["train_loss"][-1],
           "initial_val_loss": hist["val_loss"][0], "final_val_loss": hist["val_loss"][-1],
           "initial_train_score": hist[f"train_{mname}"][0], "final_train_score": score_metric(cfg, raw_tr, y[tr])[1],
           "initial_val_score": hist[f"val_{mname}"][0], "final_val_score": score_metric(cfg, raw_va, y[va])[1]}
    fitted = FittedNetwork(net, hist, seconds, row, mname, y[va], raw_va)
    if cfg["kind"] not in ("classifier", "sed"):       # the SED network's coefficients are not slope-corrected
        calibrate(fitted, slope_correction, with_intervals=name == "redshift" and cfg["kind"] != "pdf")
    return fitted


def calibrate(fitted: FittedNetwork, slope_correction: dict, with_intervals: bool) -> None:
    """Fit the slope correction of a regression/pdf network on its validation predictions (in
    place): calibration, validation scatter (NMAD after correction), slope and rmse before/after
    in the table row, and with `with_intervals` the residual quantiles (regression redshift)."""
    net, y_va, raw_va = fitted.net, fitted.y_va, fitted.raw_va
    net.calibration = Calibration.fit(raw_va, y_va, slope_correction.get("degree", 1),
                                      slope_correction.get("method", "target_on_prediction"))
    fitted.cal_va = net.calibration.apply(raw_va)
    before, after = M.regression_metrics(raw_va, y_va), M.regression_metrics(fitted.cal_va, y_va)
    fitted.table.update(val_slope_before=before["slope"], val_slope_after=after["slope"],
                        val_rmse_before=before["rmse"], val_rmse_after=after["rmse"])
    net.scatter = after["nmad"]
    if with_intervals:
        net.residual_quantiles = residual_quantiles(fitted.cal_va, y_va)
