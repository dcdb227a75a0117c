"""Sim-to-real adaptation: fine-tune the redshift network of a registered ensemble on labelled real
rows, with K-fold cross-validation so that no object is scored by a network that trained on it.

Rebuilding Keras from the ensemble
----------------------------------
The ensemble stores each network as NumPy arrays (`DenseStack`: normalisation mean/std and a list of
Dense layers {W, b, activation}); `ensemble.json` names the preset only (``info["preset"]``), not
its configuration. `keras_from_stack` therefore rebuilds the Keras model *from the arrays*: a
Normalization layer with the stored mean and variance = std² (when the network has one), then one
Dense layer per stored layer with its units (W's shape), activation and weights. That is the exact
shape `nets.build_network` produces (its optional input Dense is just another Dense), so the rebuilt
model reproduces the NumPy outputs (float32 vs float64: ~1e-6). The preset, when
``info["preset"]`` still loads and its redshift network has the same layers, contributes only
training settings: optimizer and learning rate, L2, dropout rates after the same layers, the loss
and the p(z) label smoothing (`finetune_config`); otherwise neutral settings are used (Adam 1e-3,
no L2, no dropout). The p(z) bins always come from the stored network. After fine-tuning,
`nets.extract_layers` turns the model back into a `DenseStack`; the normalisation (not trained)
is kept bit-identical.

Fine-tuning
-----------
Only the redshift network changes; stellarity, type and mass networks and their calibrations are
the original ones. The redshift slope correction was fitted to the *original* network's outputs
on the mock, so once fine-tuning moves the network it no longer fits: by default (``"refit"``) it
is fitted again on the fold's inner validation rows the way training does (never on the fold it
predicts); ``"keep"`` keeps it (the new `Ensemble` then differs by the network's weights alone),
``"identity"`` drops it. Training is `train.fit.fit_network` in its fine-tuning mode (the
targets are `fit.network_target` of the label: soft p(z) bins for a pdf network): the preset's
optimizer at ``lr_factor`` × its learning rate, mini-batches of ``batch_size``, at most ``epochs``
epochs, early stopping on an inner validation part (patience ``patience``, best weights
restored); when no epoch beats the original network's validation loss the original weights are
kept.

Folds
-----
Fold of an object = ⌊K·u⌋ with u = SplitMix64(ID ⊕ salt(seed)) ∈ [0, 1) (`assign_folds`): a pure
function of the ID, independent of the training split hash (different salt) and of row order. For
fold k the network is fine-tuned on the labelled galaxies of the other K−1 folds and predicts every
row of fold k; the inner validation part (early stopping) is the ⌈f·n⌉ training rows with the
lowest value of a second salted ID hash (`fold_plan`). Keras is seeded with seed + k.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark import metrics as M
from galaxy_spark.features import id_hash_unit
from galaxy_spark.model.ensemble import CALIBRATION_METHODS, Calibration, DenseStack, Ensemble, Network
from galaxy_spark.model.nets import compile_network, dense_layers, extract_layers, load_preset, network_loss
from galaxy_spark.train.fit import fit_network, network_target, point_prediction, residual_quantiles
from galaxy_spark.log import get_logger

log = get_logger(__name__)

FOLD_SALT = 0x2545F4914F6CDD1D     # salts of the fold and inner-validation hashes (independent of the
INNER_SALT = 0x5851F42D4C957F2D    # training split hash, which is the unsalted one)
MIN_TRAIN_ROWS = 10                # fine-tuning on fewer labelled rows than this is refused
NETWORK = "redshift"               # the only network that is fine-tuned


@dataclass
class FinetuneSettings:
    """How the real-data check fine-tunes the redshift network (jobs/realdata_check.py flags)."""
    epochs: int = 40                  # at most; early stopping usually ends sooner
    lr_factor: float = 0.1            # × the preset's learning rate (as driver.DEFAULT_FINETUNE)
    patience: int = 6                 # early-stopping patience in epochs, on the inner validation loss
    batch_size: int = 32              # mini-batch (capped by the preset's); small: a few hundred rows
    validation_fraction: float = 0.15  # inner validation part of each fold's training rows
    seed: int = 42
    calibration: str = "refit"        # keep | refit | identity: the redshift slope correction afterwards


CALIBRATION_CHOICES = ("keep", "refit", "identity")


# ---- Keras <-> DenseStack ------------------------------------------------------------------------
def keras_from_stack(stack: DenseStack, dropout: list | None = None, l2: float | None = None, name: str = "net"):
    """A Keras model computing what `stack` computes: [Normalization] → Dense layers with the stored
    units, activations and weights. `dropout[i]` (optional) is a Dropout rate after Dense layer i
    (training only); `l2` a kernel regulariser for every Dense layer. Not compiled."""
    import keras
    from keras import layers

    if not stack.layers:
        raise ValueError("network has no layers")
    n_in = int(np.shape(stack.layers[0]["W"])[0])
    reg = keras.regularizers.l2(l2) if l2 else None
    inputs = keras.Input(shape=(n_in,), name="features")
    x = inputs
    if stack.norm is not None:
        std = np.asarray(stack.norm["std"], np.float64).reshape(-1)
        x = layers.Normalization(mean=np.asarray(stack.norm["mean"], np.float64).reshape(-1), variance=std ** 2,
                                 name="normalise")(x)
    dense = []
    for i, layer in enumerate(stack.layers):
        w = np.asarray(layer["W"], np.float32)
        d = layers.Dense(w.shape[1], activation=layer["activation"], kernel_regularizer=reg, name=f"dense_{i + 1}")
        x = d(x)
        dense.append((d, w, np.asarray(layer["b"], np.float32)))
        rate = (dropout[i] if dropout is not None and i < len(dropout) else None)
        if rate and i < len(stack.layers) - 1:
            x = layers.Dropout(rate, name=f"dropout_{i + 1}")(x)
    model = keras.Model(inputs, x, name=name)
    for d, w, b in dense:
        d.set_weights([w, b])
    return model


def stack_from_keras(model, norm: dict | None) -> DenseStack:
    """The NumPy network of a (rebuilt, fine-tuned) Keras model; `norm` (the original, untrained
    normalisation) replaces the float32 round trip of the Normalization layer."""
    _, dense = extract_layers(model)
    norm = None if norm is None else {"mean": np.asarray(norm["mean"]), "std": np.asarray(norm["std"])}
    return DenseStack(dense, norm)


# ---- training settings ---------------------------------------------------------------------------
def _z_bins_cfg(centres: np.ndarray) -> dict:
    """The preset's z_bins {min, max, count} of evenly spaced bin centres."""
    width = float(centres[1] - centres[0])
    return {"min": float(centres[0] - width / 2), "max": float(centres[-1] + width / 2), "count": int(len(centres))}


def finetune_config(ensemble: Ensemble, name: str = NETWORK) -> tuple[dict, list | None, str]:
    """(cfg for `nets.compile_network` / `fit.network_target`, dropout rate per Dense layer or
    None, where the settings came from). The preset named in the ensemble's info is used when it
    loads and its network has exactly the stored layers; else neutral settings."""
    net = ensemble.networks[name]
    stored = [(int(np.shape(la["W"])[1]), la["activation"]) for la in net.stack.layers]
    n_in = int(np.shape(net.stack.layers[0]["W"])[0])
    preset_name = ensemble.info.get("preset")
    cfg, dropout, source = None, None, "defaults (Adam 1e-3, no L2, no dropout)"
    if preset_name:
        try:
            pcfg = load_preset(str(preset_name))["networks"][name]
        except (InputError, KeyError, OSError):
            pcfg = None
        layers = dense_layers(pcfg, n_in) if pcfg is not None else []
        if pcfg is not None and pcfg["kind"] == net.kind and [(u, a) for u, a, _ in layers] == stored:
            cfg = dict(pcfg)
            dropout = [d for _, _, d in layers]
            source = f"preset {preset_name!r}"
        elif pcfg is not None:
            source += f"; preset {preset_name!r} no longer matches the stored layers"
    if cfg is None:
        cfg = {"kind": net.kind, "optimizer": {"name": "adam", "learning_rate": 1e-3}, "batch_size": 512,
               "loss": "mse", "label_smoothing_sigma": 0.0}
    if net.kind == "pdf":
        cfg["z_bins"] = _z_bins_cfg(np.asarray(net.z_bins, np.float64))
    return cfg, dropout, source


# ---- fine-tuning one network ---------------------------------------------------------------------
def finetune_network(ensemble: Ensemble, x_tr: np.ndarray, z_tr: np.ndarray, x_va: np.ndarray, z_va: np.ndarray,
                     settings: FinetuneSettings, seed: int | None = None) -> tuple[Ensemble, dict]:
    """A copy of `ensemble` whose redshift network is fine-tuned on (x_tr, z_tr) with early stopping
    on (x_va, z_va); every other network and all calibrations are kept. Returns (ensemble, info)."""
    import keras

    if len(x_tr) == 0 or len(x_va) == 0:
        raise InputError(f"fine-tuning needs training and validation rows (got {len(x_tr)} and {len(x_va)})")
    seed = settings.seed if seed is None else seed
    net = ensemble.networks[NETWORK]
    cfg, dropout, source = finetune_config(ensemble)
    keras.utils.set_random_seed(seed)
    model = keras_from_stack(net.stack, dropout, cfg.get("l2"), name=NETWORK)
    compile_network(model, cfg, network_loss(cfg), settings.lr_factor)     # evaluate needs the loss
    z_tr, z_va = np.asarray(z_tr, np.float64), np.asarray(z_va, np.float64)
    x_tr, x_va = np.asarray(x_tr, np.float32), np.asarray(x_va, np.float32)
    t_va = network_target(NETWORK, cfg, z_va)
    batch = int(max(1, min(settings.batch_size, cfg.get("batch_size", settings.batch_size))))
    original = model.get_weights()
    val_before = float(model.evaluate(x_va, t_va, batch_size=batch, verbose=0))
    model, hist = fit_network(NETWORK, cfg, x_tr, z_tr, x_va, z_va, None, seed, normalise=False, model=model,
                              finetune={"epochs": settings.epochs, "lr_factor": settings.lr_factor,
                                        "patience": settings.patience},
                              batch_size=batch, verbose=0, reseed=False)
    val_after = float(model.evaluate(x_va, t_va, batch_size=batch, verbose=0))
    improved = val_after < val_before
    if not improved:
        model.set_weights(original)
    stack = stack_from_keras(model, net.stack.norm)
    new_net = dataclasses.replace(net, stack=stack)
    if settings.calibration != "keep":
        new_net = recalibrated(new_net, net.calibration, x_va, z_va, settings.calibration)
    info = {**ensemble.info, "finetuned": {"network": NETWORK, "n_train": int(len(x_tr)), "n_validation": int(len(x_va)),
                                           "settings": dataclasses.asdict(settings), "seed": seed, "config": source}}
    new = Ensemble(ensemble.feature_spec, {**ensemble.networks, NETWORK: new_net}, info, ensemble.sed)
    return new, {"n_train": int(len(x_tr)), "n_validation": int(len(x_va)),
                 "epochs_run": len(hist.get("train_loss", [])), "val_loss_before": val_before,
                 "val_loss_after": val_after if improved else val_before, "improved": bool(improved),
                 "config": source}


def recalibrated(net: Network, original: Calibration, x_va: np.ndarray, z_va: np.ndarray, how: str) -> Network:
    """`net` with its slope correction replaced: ``identity`` (none), or ``refit`` on the inner
    validation rows the way training fits it (the original's degree and method; degree 1
    target-on-prediction when the original was the identity). A regression network's residual
    quantiles (its intervals) are re-measured on the same rows."""
    if how not in CALIBRATION_CHOICES:
        raise InputError(f"calibration after fine-tuning must be one of {CALIBRATION_CHOICES}, got {how!r}")
    raw = point_prediction(net.kind, net.stack(np.asarray(x_va, np.float32)), net.z_bins).astype(np.float64)
    z_va = np.asarray(z_va, np.float64)
    if how == "identity":
        cal = Calibration.identity()
    else:
        method = original.method if original.method in CALIBRATION_METHODS else "target_on_prediction"
        cal = Calibration.fit(raw, z_va, max(int(original.degree), 1), method)
    new = dataclasses.replace(net, calibration=cal)
    if net.kind != "pdf" and net.residual_quantiles:
        new.residual_quantiles = residual_quantiles(cal.apply(raw), z_va)
    return new


# ---- folds --------------------------------------------------------------------------------------
def _salted_unit(ids, salt: int, seed: int) -> np.ndarray:
    key = (salt + seed * 0x9E3779B97F4A7C15) % (1 << 64)
    key = np.int64(key - (1 << 64) if key >= 1 << 63 else key)
    return id_hash_unit(np.asarray(ids, np.int64) ^ key)


def assign_folds(ids, k: int, seed: int = 42) -> np.ndarray:
    """Fold 0…k−1 of each ID: ⌊k·u⌋, u a salted SplitMix64 hash of the ID (pure, order-free)."""
    if k < 2:
        raise InputError(f"cross-validation needs at least 2 folds, got {k}")
    u = _salted_unit(ids, FOLD_SALT, seed)
    return np.minimum((u * k).astype(np.int64), k - 1)


def check_folds(k: int, n_labelled: int | None = None) -> None:
    """InputError for a fold count that cannot work (0 means off and is accepted)."""
    if k == 0:
        return
    if k < 0 or k == 1:
        raise InputError(f"--finetune-folds must be 0 (off) or at least 2, got {k}: with K folds the network is "
                         "fine-tuned K times, each time on K-1 folds, and scores the fold it did not see")
    if n_labelled is not None and k > n_labelled:
        raise InputError(f"--finetune-folds {k} is more than the {n_labelled} labelled galaxies to fine-tune on; "
                         "use fewer folds")


def fold_plan(ids, labelled: np.ndarray, k: int, seed: int = 42,
              validation_fraction: float = 0.15) -> list[dict]:
    """For each fold: {"fold", "predict", "train", "validation"} as index arrays into `ids`.

    predict = every row of the fold; train/validation = the labelled rows of the other folds,
    validation being the ⌈f·n⌉ (at least 1) of them with the lowest inner hash. A pure function of
    (ids, labelled, k, seed, f): no row is ever in the training or validation rows of the fold that
    predicts it."""
    ids = np.asarray(ids, np.int64)
    labelled = np.asarray(labelled, bool)
    check_folds(k, int(labelled.sum()))
    if not 0 < validation_fraction < 1:
        raise InputError(f"inner validation fraction must be in (0, 1), got {validation_fraction}")
    fold = assign_folds(ids, k, seed)
    inner = _salted_unit(ids, INNER_SALT, seed)
    plan = []
    for f in range(k):
        pool = np.flatnonzero(labelled & (fold != f))
        n_val = min(max(1, math.ceil(validation_fraction * len(pool))), len(pool) - 1)
        order = pool[np.argsort(inner[pool], kind="mergesort")]
        val, train = np.sort(order[:max(n_val, 0)]), np.sort(order[max(n_val, 0):])
        if len(train) < MIN_TRAIN_ROWS or len(val) < 1:
            raise InputError(f"fold {f + 1} of {k}: only {len(pool)} labelled galaxies outside it to fine-tune on "
                             f"(need at least {MIN_TRAIN_ROWS + 1}); use fewer folds or more labelled rows")
        plan.append({"fold": f, "predict": np.flatnonzero(fold == f), "train": train, "validation": val})
    return plan


def crossval_predict(ensemble: Ensemble, x: np.ndarray, ok: np.ndarray, z: np.ndarray, ids,
                     labelled: np.ndarray, k: int, settings: FinetuneSettings, echo=log.info) -> tuple[pd.DataFrame, list]:
    """Out-of-fold predictions of fine-tuned ensembles for every row (same columns as
    `Ensemble.predict`) and the per-fold training summaries."""
    plan = fold_plan(ids, labelled & ok & np.isfinite(z), k, settings.seed, settings.validation_fraction)
    cols = None
    folds = []
    for p in plan:
        tr, va, pr = p["train"], p["validation"], p["predict"]
        if len(pr) == 0:
            folds.append({"fold": p["fold"] + 1, "n_predicted": 0, "skipped": "no rows in this fold"})
            continue
        ens, info = finetune_network(ensemble, x[tr], z[tr], x[va], z[va], settings, seed=settings.seed + p["fold"])
        pred = ens.predict_features(x[pr], ok[pr])
        if cols is None:
            cols = {c: np.full(len(x), np.nan) for c in pred.columns if c != "scorable"}
        for c, v in cols.items():
            v[pr] = pred[c].to_numpy(float)
        info = {"fold": p["fold"] + 1, "n_predicted": int(len(pr)), **info}
        folds.append(info)
        echo(f"fine-tuning fold {p['fold'] + 1}/{k}: {info['n_train']} train / {info['n_validation']} validation "
             f"galaxies, {info['epochs_run']} epochs, validation loss {info['val_loss_before']:.4f} -> "
             f"{info['val_loss_after']:.4f}{'' if info['improved'] else ' (no improvement: original kept)'}; "
             f"predicts {len(pr)} rows")
    out = pd.DataFrame(cols)
    out["scorable"] = np.asarray(ok, bool)
    return out, folds


# ---- the before/after comparison -----------------------------------------------------------------
def _summary(z_pred: np.ndarray, z_true: np.ndarray) -> dict:
    r = M.photoz_metrics(z_pred, z_true)
    return {k: r[k] for k in ("n", "sigma_nmad", "bias", "outlier_frac")}


def finetune_check(ensemble: Ensemble, cat: pd.DataFrame, ids, z_before: np.ndarray, label: np.ndarray,
                   label_name: str, galaxies: np.ndarray, primary: tuple[str, np.ndarray], k: int,
                   settings: FinetuneSettings, echo=log.info) -> tuple[dict, np.ndarray]:
    """K-fold fine-tuning on the labelled galaxies of `cat` (rows aligned with `ids`, `z_before`,
    `label`, `galaxies`) and the metrics block: σ_NMAD, bias, outlier fraction and n of the
    original `z_before` ("before") and of the out-of-fold fine-tuned z_phot ("after_finetune")
    against `label`, on the same objects: the labelled galaxies of the `primary` sample
    (name, mask) and, under "all_galaxies", all labelled galaxies. Returns (block, fine-tuned
    z_phot per row)."""
    from galaxy_spark.features import build_features

    x, ok = build_features(cat, ensemble.feature_spec)
    label = np.asarray(label, np.float64)
    z_before = np.asarray(z_before, np.float64)
    labelled = np.asarray(galaxies, bool) & ok & np.isfinite(label) & (label >= 0)
    check_folds(k, int(labelled.sum()))
    pred, folds = crossval_predict(ensemble, x, ok, label, ids, labelled, k, settings, echo)
    z_after = pred["z_phot"].to_numpy(float)

    def compare(name, mask):
        m = np.asarray(mask, bool) & labelled
        return {"sample": name, "before": _summary(z_before[m], label[m]),
                "after_finetune": _summary(z_after[m], label[m])}

    block = {"folds": k, "label": label_name, "network": NETWORK,
             **compare(*primary), "all_galaxies": compare("all galaxies", labelled),
             "n_labelled_galaxies": int(labelled.sum()),
             "fold_method": "fold = floor(K * splitmix64(ID xor salt)); for each fold the network is fine-tuned "
                            "on the labelled galaxies of the other folds (inner validation for early stopping: "
                            f"the {settings.validation_fraction:g} of them with the lowest second salted ID hash) "
                            "and predicts the rows of the fold",
             "settings": dataclasses.asdict(settings), "fold_runs": folds}
    return block, z_after


# ---- the real-data check's options and labels ----------------------------------------------------
def check_options(folds: int, label: str | None, spec: str | None, settings: FinetuneSettings) -> None:
    """InputError for fine-tuning options that cannot work, before any work is done."""
    check_folds(folds)
    if folds == 0:
        if spec or label:
            raise InputError("--finetune-label/--finetune-spec only apply with --finetune-folds K (K >= 2)")
        return
    if settings.epochs < 1:
        raise InputError(f"--finetune-epochs must be at least 1, got {settings.epochs}")
    if not settings.lr_factor > 0:
        raise InputError(f"--finetune-lr-factor must be positive, got {settings.lr_factor}")
    if settings.calibration not in CALIBRATION_CHOICES:
        raise InputError(f"--finetune-calibration must be one of {', '.join(CALIBRATION_CHOICES)}, "
                         f"got {settings.calibration!r}")
    if spec is not None:
        from galaxy_spark.catalog.spec import Z_SPEC

        if label not in (None, Z_SPEC):
            raise InputError(f"--finetune-spec gives the label {Z_SPEC}; drop --finetune-label {label}")
        if not Path(spec).exists():
            raise InputError(f"spectroscopic file not found: {spec}")


def realdata_labels(cat: pd.DataFrame, survey, label: str | None, spec: str | None) -> tuple[np.ndarray, str, str]:
    """(label per row, label name, description) for fine-tuning: a column of the ingested rows
    (default the survey's own BPZ redshift, zb_1), or z_spec of the secure (quality >= 3) galaxy
    spectra of a spectroscopic file (`galaxy_spark.catalog.spec.read_spec` format, joined on ID). NaN
    where a row has no usable label."""
    if spec is not None:
        from galaxy_spark.catalog.spec import SECURE_QUALITY, Z_SPEC
        from galaxy_spark.train.data import spec_label_set

        targets, report = spec_label_set(cat[survey.id_column].to_numpy(np.int64), spec, survey, SECURE_QUALITY)
        z = targets["redshift"]
        desc = (f"{Z_SPEC} of {int(np.isfinite(z).sum())} secure galaxy spectra in {Path(spec).name} "
                f"({report['matched']} of {report['spec_rows']} spectra matched an ingested row)")
        return z, Z_SPEC, desc
    col = label or survey.labels["redshift"]
    if col not in cat.columns:
        raise InputError(f"--finetune-label {col}: no such column in the ingested rows (the ingest keeps the "
                         f"survey's columns only); pass spectroscopic redshifts with --finetune-spec FILE")
    z = pd.to_numeric(cat[col], errors="coerce").to_numpy(np.float64)
    own = col == survey.labels["redshift"]
    what = "the survey's own BPZ redshift" if own else "a column of the input"
    return z, col, f"{col} ({what})"
