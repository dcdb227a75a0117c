"""The ensemble: four networks (+ the optional SED network and its basis) + feature spec +
calibration, one predict(), NumPy only.

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
from galaxy_spark.features import FeatureSpec, build_features, numeric
from galaxy_spark.model import sed as S
from galaxy_spark.model.kernels import dense

FORMAT_VERSION = 1

# Output columns of predict(), with units (documented in the README); an ensemble with an SED
# network adds its columns (`SEDBasis.columns`) before `scorable`.
OUTPUT_COLUMNS = {
    "z_phot": "redshift point estimate (median of p(z), slope-corrected)",
    "z_phot_lo68": "16th percentile of p(z)", "z_phot_hi68": "84th percentile of p(z)",
    "z_phot_lo95": "2.5th percentile of p(z)", "z_phot_hi95": "97.5th percentile of p(z)",
    "z_phot_mode": "mode of p(z)", "z_phot_odds": "P(|z - z_phot| < 0.02 (1 + z_phot))",
    "p_star": "probability of being a star", "is_star": "1 when p_star >= 0.5",
    "spectral_type": "BPZ-scale spectral type 1-11 (slope-corrected)",
    "spectral_type_err": "1-sigma scatter on validation (NMAD)",
    "log_stellar_mass": "log10 M*/Msun (slope-corrected)",
    "log_stellar_mass_err": "1-sigma scatter on validation (NMAD), dex",
    "scorable": "False when the detection-band magnitude is missing (estimates are null)",
}
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


def pdf_quantiles(p: np.ndarray, centres: np.ndarray, qs) -> np.ndarray:
    """Quantiles of binned pdfs (n, nbins) by linear interpolation of the CDF at bin edges."""
    width = centres[1] - centres[0]
    edges = np.concatenate([[centres[0] - width / 2], centres + width / 2])
    cdf = np.concatenate([np.zeros((len(p), 1)), np.cumsum(p, axis=1)], axis=1)
    cdf /= cdf[:, -1:]
    out = np.empty((len(p), len(qs)))
    for j, q in enumerate(qs):
        k = np.clip((cdf < q).sum(axis=1), 1, len(edges) - 1)  # first edge index with cdf >= q
        c0, c1 = cdf[np.arange(len(p)), k - 1], cdf[np.arange(len(p)), k]
        frac = np.where(c1 > c0, (q - c0) / np.where(c1 > c0, c1 - c0, 1), 0.5)
        out[:, j] = edges[k - 1] + frac * (edges[k] - edges[k - 1])
    return out


def read_pdf(znet: "Network", p: np.ndarray) -> dict[str, np.ndarray]:
    """The one read-out of binned p(z) (n, nbins) → slope-corrected median, 68%/95% quantiles and
    mode (clipped at z = 0: the correction is a polynomial and may extrapolate below it), and the
    odds P(|z − z_phot| < 0.02(1 + z_phot)). Used by predict and by Monte Carlo scoring alike."""
    q = pdf_quantiles(p, znet.z_bins, [0.5, 0.16, 0.84, 0.025, 0.975])
    q = np.maximum(znet.calibration.apply(q), 0.0)
    mode = np.maximum(znet.calibration.apply(znet.z_bins[np.argmax(p, axis=1)]), 0.0)
    width = znet.z_bins[1] - znet.z_bins[0]
    near = np.abs(znet.z_bins[None, :] - q[:, :1]) <= 0.02 * (1 + q[:, :1]) + width / 2
    return dict(z_phot=q[:, 0], z_phot_lo68=q[:, 1], z_phot_hi68=q[:, 2], z_phot_lo95=q[:, 3],
                z_phot_hi95=q[:, 4], z_phot_mode=mode, z_phot_odds=(p * near).sum(axis=1))


class Ensemble:
    def __init__(self, feature_spec: FeatureSpec, networks: dict[str, Network], info: dict | None = None,
                 sed: S.SEDBasis | None = None):
        self.feature_spec = feature_spec
        self.networks = networks
        self.info = dict(info or {})
        self.sed = sed if "sed" in networks else None

    def output_columns(self) -> dict[str, str]:
        """predict()'s columns with their descriptions: `OUTPUT_COLUMNS`, the SED columns before
        ``scorable`` when the ensemble has an SED network."""
        if self.sed is None:
            return dict(OUTPUT_COLUMNS)
        cols = {k: v for k, v in OUTPUT_COLUMNS.items() if k != "scorable"}
        return {**cols, **self.sed.columns(), "scorable": OUTPUT_COLUMNS["scorable"]}

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
    def predict_arrays(self, x: np.ndarray, m_det: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The estimates for feature rows `x` as arrays (no masking of unscorable rows); the SED's
        absolute and synthetic magnitudes need the detection-band magnitudes `m_det`."""
        out = {}
        z = self.networks["redshift"]
        p = None
        if z.kind == "pdf":
            p = z.raw(x)
            out.update(read_pdf(z, p))
        else:
            zp = np.maximum(z.calibration.apply(z.raw(x)[:, 0]), 0.0)
            rq = z.residual_quantiles
            out.update(z_phot=zp, z_phot_mode=zp, z_phot_odds=np.full(len(zp), np.nan))
            for col, key in (("z_phot_lo68", "q16"), ("z_phot_hi68", "q84"),
                             ("z_phot_lo95", "q02.5"), ("z_phot_hi95", "q97.5")):
                out[col] = np.maximum(zp + rq.get(key, np.nan) * (1 + zp), 0.0)
        ps = self.networks["stellarity"].positive_probability(x)
        out["p_star"] = ps
        out["is_star"] = (ps >= 0.5).astype(np.float64)
        for name, col in (("spectral_type", "spectral_type"), ("stellar_mass", "log_stellar_mass")):
            n = self.networks[name]
            out[col] = n.calibration.apply(n.raw(x)[:, 0])
            out[f"{col}_err"] = np.full(len(x), n.scatter)
        out.update(self.sed_arrays(x, out["z_phot"], m_det, p))
        return out

    def predict_features(self, x: np.ndarray, scorable: np.ndarray, m_det: np.ndarray | None = None) -> pd.DataFrame:
        """`predict_arrays` as a DataFrame of `output_columns`, null where not `scorable`."""
        df = pd.DataFrame(self.predict_arrays(x, m_det))
        df.loc[~scorable, :] = np.nan
        df["scorable"] = scorable
        return df[list(self.output_columns())]

    def predict(self, catalogue_rows: pd.DataFrame) -> pd.DataFrame:
        x, ok = build_features(catalogue_rows, self.feature_spec)
        return self.predict_features(x, ok, numeric(catalogue_rows[self.feature_spec.detection_band]))

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
               "networks": nets, "info": self.info, "outputs": self.output_columns()}
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
