"""The ensemble: one network per head of the head table (model/heads.py; the optional SED network
with its basis) + feature spec + calibration, one predict() (the scoring kernel, model/estimates.py,
in bounded chunks), NumPy only.

Saved as a directory: `ensemble.json` (feature spec, network specs, calibration, provenance) and
`weights.npz` (normalisation and Dense weights). Evaluating the small dense networks with NumPy
matches Keras to 1e-5 (tested) and spares every scoring worker a TensorFlow import.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark.errors import InputError
from galaxy_spark.features import FeatureSpec
from galaxy_spark.model import heads as H
from galaxy_spark.model import sed as S
from galaxy_spark.model.estimates import ScoreOptions, estimate_columns
from galaxy_spark.model.heads import read_pdf
from galaxy_spark.model.kernels import dense

FORMAT_VERSION = 1
# Rows per predict() step: a served request of millions of rows is scored in bounded memory.
PREDICT_CHUNK_ROWS = 65536

_ACT = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
}


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# Rows per kernel call: bounds the activations in memory and keeps them in cache. Any value gives
# the same numbers (model/kernels.py: each row's arithmetic is fixed, whatever its batch).
FORWARD_BLOCK_ROWS = 512


@dataclass
class DenseStack:
    """A feed-forward network as NumPy arrays, evaluated in float32 by `model.kernels.dense`."""
    layers: list[dict]
    norm: dict | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Network output (float32) for the rows of `x`; a row's output does not depend on the
        other rows or on how they are batched."""
        x = np.asarray(x, np.float32)
        folded = self._folded()
        if len(x) == 0:
            return np.zeros((0, folded[-1][0].shape[1]), np.float32)
        out = [self._forward(x[i:i + FORWARD_BLOCK_ROWS], folded) for i in range(0, len(x), FORWARD_BLOCK_ROWS)]
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _folded(self) -> list[tuple[np.ndarray, np.ndarray, str]]:
        """(W, b, activation) per layer in float32, the input normalisation folded into the first
        layer: ((x − mean)/std)·W + b = x·(W/std) + (b − (mean/std)·W), computed once in float64."""
        cached = getattr(self, "_f32", None)
        if cached is not None and len(cached) == len(self.layers):
            return cached
        out = []
        for i, layer in enumerate(self.layers):
            w, b = np.asarray(layer["W"], np.float64), np.asarray(layer["b"], np.float64)
            if i == 0 and self.norm is not None:
                mean = np.asarray(self.norm["mean"], np.float64)
                std = np.asarray(self.norm["std"], np.float64)
                b = b - (mean / std) @ w
                w = w / std[:, None]
            out.append((np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32),
                        layer["activation"]))
        self._f32 = out
        return out

    @staticmethod
    def _forward(h: np.ndarray, folded) -> np.ndarray:
        for w, b, act in folded:
            h = dense(h, w, b, relu=act == "relu")
            if act == "softmax":
                h = _softmax(h)
            elif act not in ("relu", "linear"):
                h = _ACT[act](h).astype(np.float32)
        return h


CALIBRATION_METHODS = ("target_on_prediction", "unit_slope")


@dataclass
class Calibration:
    """Slope correction fitted on the validation split, stored as a monotone table pred → corrected.

    - ``target_on_prediction`` (default): polynomial true ≈ P(pred), i.e. E[true | pred] on the
      3σ-clipped objects. It maps predictions to targets without amplifying the scatter, but it
      cannot undo the shrinkage of pred-vs-true towards the mean.
    - ``unit_slope`` (the thesis' reading): fit pred = P(true) and apply P⁻¹, so the corrected
      predictions have unit slope against the truth; it amplifies the scatter by 1/slope.
    """
    degree: int
    coeffs: list[float]
    grid_pred: list[float] = field(default_factory=list)
    grid_out: list[float] = field(default_factory=list)
    method: str = "target_on_prediction"

    @classmethod
    def fit(cls, pred: np.ndarray, true: np.ndarray, degree: int = 1,
            method: str = "target_on_prediction") -> "Calibration":
        """Sigma-clipped polynomial fit (3 × NMAD, iterated): catastrophic outliers — a few % of
        photo-z labels — must not drive the correction of everything else."""
        if method not in CALIBRATION_METHODS:
            raise ValueError(f"slope correction method {method!r} is not one of {CALIBRATION_METHODS}")
        ok = np.isfinite(pred) & np.isfinite(true)
        pred, true = pred[ok], true[ok]
        if degree < 1 or len(pred) < degree + 2 or np.ptp(true) == 0 or np.ptp(pred) == 0:
            return cls.identity()
        x, y = (pred, true) if method == "target_on_prediction" else (true, pred)
        for d in range(degree, 0, -1):
            coeffs = _clipped_polyfit(x, y, d)
            grid_x = np.linspace(*np.quantile(x, [0.001, 0.999]), 512)
            grid_y = np.polyval(coeffs, grid_x)
            grid_pred, grid_out = (grid_x, grid_y) if method == "target_on_prediction" else (grid_y, grid_x)
            if np.all(np.diff(grid_pred) > 0) and np.all(np.diff(grid_out) > 0):  # monotone: keep
                return cls(d, coeffs.tolist(), grid_pred.tolist(), grid_out.tolist(), method)
        return cls.identity()

    @classmethod
    def identity(cls) -> "Calibration":
        return cls(0, [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], "identity")

    def apply(self, pred: np.ndarray) -> np.ndarray:
        pred = np.asarray(pred, dtype=np.float64)
        if self.degree == 0:
            return pred
        gp, go = np.asarray(self.grid_pred), np.asarray(self.grid_out)
        out = np.interp(pred, gp, go)
        # linear continuation beyond the tabulated range with the end slopes
        lo_slope = (go[1] - go[0]) / (gp[1] - gp[0])
        hi_slope = (go[-1] - go[-2]) / (gp[-1] - gp[-2])
        out = np.where(pred < gp[0], go[0] + (pred - gp[0]) * lo_slope, out)
        out = np.where(pred > gp[-1], go[-1] + (pred - gp[-1]) * hi_slope, out)
        return out

    def to_dict(self):
        return {"degree": self.degree, "coeffs": self.coeffs, "grid_pred": self.grid_pred,
                "grid_out": self.grid_out, "method": self.method}


def _clipped_polyfit(x: np.ndarray, y: np.ndarray, degree: int, nsigma: float = 3.0, iterations: int = 5):
    keep = np.ones(len(x), bool)
    coeffs = np.polyfit(x, y, degree)
    for _ in range(iterations):
        r = y - np.polyval(coeffs, x)
        mad = 1.4826 * np.median(np.abs(r[keep] - np.median(r[keep])))
        new_keep = np.abs(r - np.median(r[keep])) <= nsigma * max(mad, 1e-12)
        if new_keep.sum() < degree + 2 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        coeffs = np.polyfit(x[keep], y[keep], degree)
    return coeffs


@dataclass
class Network:
    name: str            # redshift | stellarity | spectral_type | stellar_mass | sed
    kind: str            # regression | classifier | pdf | sed (K basis coefficients)
    stack: DenseStack
    calibration: Calibration
    z_bins: np.ndarray | None = None           # pdf: bin centres
    residual_quantiles: dict = field(default_factory=dict)  # regression: validation residuals
    scatter: float = float("nan")               # validation NMAD after correction
    logit_offset: float = 0.0                   # classifier: undoes the class weights (prior shift)

    def raw(self, x: np.ndarray) -> np.ndarray:
        return self.stack(x)

    def positive_probability(self, x: np.ndarray) -> np.ndarray:
        """Classifier: P(class 1 | x) with the training class weights undone, so the probability
        refers to the true class balance: logit p = logit p_weighted + logit_offset."""
        p = np.clip(self.stack(x)[:, 1].astype(np.float64), 1e-12, 1 - 1e-12)
        if self.logit_offset == 0.0:
            return p
        logit = np.log(p) - np.log1p(-p) + self.logit_offset
        return 1.0 / (1.0 + np.exp(-logit))


def estimates_frame(est: dict, table: list) -> pd.DataFrame:
    """`estimate_columns` output as a DataFrame of `table`'s columns: float64, and int32 as
    pandas' nullable Int32 (null where not scorable), as the scores hold them."""
    data = {}
    for c in table:
        v = est[c.name]
        if c.dtype == "int32" and c.estimate:
            v = pd.array(v, dtype="Int32")
            v[~est["scorable"]] = pd.NA
        data[c.name] = v
    return pd.DataFrame(data)


class Ensemble:
    def __init__(self, feature_spec: FeatureSpec, networks: dict[str, Network], info: dict | None = None,
                 sed: S.SEDBasis | None = None):
        self.feature_spec = feature_spec
        self.networks = networks
        self.info = dict(info or {})
        self.sed = sed if "sed" in networks else None

    def output_table(self) -> list[H.Column]:
        """predict()'s columns (= the scores' estimate columns): the head table's, with this
        ensemble's SED columns when it has an SED network. Built once: every batch asks for it."""
        table = self.__dict__.get("_output_table")
        if table is None:
            table = self._output_table = H.output_table(self.sed.columns() if self.sed is not None else {})
        return table

    def with_synthetic_filters(self, names) -> "Ensemble":
        """This ensemble scoring synthetic magnitudes in more filters (`sed.with_filters`: speclite
        names or curve files). InputError without an SED network or for an unknown filter."""
        names = [n for n in names if n]
        if not names:
            return self
        if self.sed is None:
            raise InputError("--synthetic-filters needs a model with an SED network (the default preset has "
                             f"one); this model (preset {self.info.get('preset')!r}) has none")
        try:
            sed = S.with_filters(self.sed, names)
        except ValueError as e:
            raise InputError(f"--synthetic-filters: {e}") from None
        return Ensemble(self.feature_spec, self.networks, self.info, sed)

    def sed_arrays(self, x: np.ndarray, z_phot: np.ndarray | None = None, m_det: np.ndarray | None = None,
                   p: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The SED columns for feature rows `x` ({} without an SED network) at the point redshifts
        `z_phot` with the binned p(z) `p` (both computed from `x` when not given), scaled to the
        detection-band magnitudes `m_det`."""
        if self.sed is None:
            return {}
        z = self.networks["redshift"]
        if p is None and z.kind == "pdf":
            p = z.raw(x)
        if z_phot is None:
            z_phot = read_pdf(z, p)["z_phot"] if p is not None else np.maximum(z.calibration.apply(z.raw(x)[:, 0]), 0.0)
        pz_z = np.maximum(z.calibration.apply(z.z_bins), 0.0) if p is not None else None
        coeffs = self.sed.coefficients(self.networks["sed"].raw(x))
        return self.sed.derived(coeffs, z_phot, m_det, p, pz_z)

    # ---- prediction --------------------------------------------------------------------
    def predict_features(self, x: np.ndarray, scorable: np.ndarray) -> pd.DataFrame:
        """The fixed heads' float columns for feature rows `x` (training and evaluation in process),
        NaN where not `scorable`."""
        est, _ = H.read_heads(self.networks, x)
        cols = [c.name for h in H.HEADS if not h.optional for c in h.outputs if c.dtype == "float64"]
        return pd.DataFrame({c: np.where(scorable, np.asarray(est[c], np.float64), np.nan) for c in cols})

    def predict(self, catalogue_rows: pd.DataFrame, opts: ScoreOptions = ScoreOptions(),
                chunk_rows: int = PREDICT_CHUNK_ROWS) -> pd.DataFrame:
        """The estimates for canonical catalogue rows, one row per input row: the same columns,
        dtypes and values as the Spark scores' (`estimate_columns`; int32 columns nullable), in
        chunks of `chunk_rows` so memory stays bounded whatever the request's size."""
        parts = []
        for s in range(0, max(len(catalogue_rows), 1), chunk_rows):
            est = estimate_columns(self, catalogue_rows.iloc[s:s + chunk_rows], opts)
            parts.append(estimates_frame(est, self.output_table()))
        out = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        out.index = catalogue_rows.index
        return out

    # ---- persistence -------------------------------------------------------------------
    def to_parts(self) -> tuple[dict, dict]:
        """(JSON document, named arrays): the whole ensemble, picklable for a Spark broadcast."""
        arrays, nets = {}, {}
        for name, n in self.networks.items():
            if n.stack.norm is not None:
                arrays[f"{name}/norm/mean"] = n.stack.norm["mean"]
                arrays[f"{name}/norm/std"] = n.stack.norm["std"]
            for i, layer in enumerate(n.stack.layers):
                arrays[f"{name}/{i}/W"] = layer["W"]
                arrays[f"{name}/{i}/b"] = layer["b"]
            if n.z_bins is not None:
                arrays[f"{name}/z_bins"] = n.z_bins
            nets[name] = {"kind": n.kind, "activations": [layer["activation"] for layer in n.stack.layers],
                          "normalised": n.stack.norm is not None, "calibration": n.calibration.to_dict(),
                          "residual_quantiles": n.residual_quantiles, "scatter": n.scatter,
                          "logit_offset": n.logit_offset}
        doc = {"format_version": FORMAT_VERSION, "feature_spec": self.feature_spec.to_dict(),
               "networks": nets, "info": self.info, "outputs": {c.name: c.description for c in self.output_table()}}
        if self.sed is not None:
            doc["sed"], sed_arrays = S.to_parts(self.sed)
            arrays.update(sed_arrays)
        return json.loads(json.dumps(doc, default=float)), arrays

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        doc, arrays = self.to_parts()
        np.savez(path / "weights.npz", **arrays)
        (path / "ensemble.json").write_text(json.dumps(doc, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Ensemble":
        path = Path(path)
        doc = json.loads((path / "ensemble.json").read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: ensemble format {doc.get('format_version')} is not {FORMAT_VERSION}")
        with np.load(path / "weights.npz") as w:
            arrays = {k: w[k] for k in w.files}
        return cls.from_parts(doc, arrays)

    @classmethod
    def from_parts(cls, doc: dict, arrays: dict) -> "Ensemble":
        nets = {}
        for name, spec in doc["networks"].items():
            layers = [{"W": arrays[f"{name}/{i}/W"], "b": arrays[f"{name}/{i}/b"], "activation": a}
                      for i, a in enumerate(spec["activations"])]
            norm = ({"mean": arrays[f"{name}/norm/mean"], "std": arrays[f"{name}/norm/std"]}
                    if spec["normalised"] else None)
            nets[name] = Network(name, spec["kind"], DenseStack(layers, norm),
                                 Calibration(**spec["calibration"]),
                                 arrays.get(f"{name}/z_bins"), spec.get("residual_quantiles", {}),
                                 float(spec.get("scatter", float("nan"))), float(spec.get("logit_offset", 0.0)))
        sed = S.from_parts(doc["sed"], arrays) if "sed" in doc else None
        return cls(FeatureSpec.from_dict(doc["feature_spec"]), nets, doc.get("info", {}), sed)
