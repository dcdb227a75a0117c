"""Rest-frame spectra from the SED network: the fixed basis, decoding, and what a spectrum gives.

The SED network predicts K coefficients on a fixed basis: the principal components of the
training spectra's log10 f_λ on a log-spaced rest-frame grid (default 1,000–25,000 Å, 600 points),
each spectrum normalised to a mean log10 f_λ of 0 over 3,000–9,000 Å. Decoding is
``10 ** (mean + coeffs @ components)``: always positive, a spectrum's shape only. Its amplitude
comes from the object's own detection-band magnitude at its redshift, so a decoded spectrum gives:

- rest-frame colours (U − V, NUV − r): ratios of the spectrum's fluxes through rest-frame filters;
- absolute magnitudes: M_X = m_det − DM(z) − m_det,model(z) + M_X,model (the k-correction read off
  the spectrum itself, Planck18 distance modulus);
- synthetic observed magnitudes in any filter X: m_X = m_det + m_X,model(z) − m_det,model(z), at the
  point redshift, and their p(z)-weighted spread as the uncertainty.

Observed-frame photometry is precomputed as weights on a grid of redshift nodes (IGM included). A
magnitude at the point redshift is the spectrum dotted with the weights of the two nodes around it;
the p(z)-weighted spread is read on every `SPREAD_STRIDE`-th node (one matrix product through the
networks' float32 kernel, `model.kernels.dense`). No BLAS product: an object's SED columns do not
depend on how the rows are batched, like its other estimates. A filter
the grid does not cover at some redshift (less than `MIN_COVERAGE` of its response inside the
redshifted grid) gives NaN there, never a biased number.

NumPy only (shipped with the MLflow model). The basis is built at training time
(`train/sed.py`); filter weights come from `galaxy_spark.filters` (`observed_weights`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from galaxy_spark.model.kernels import dense

NORM_RANGE_AA = (3000.0, 9000.0)     # a spectrum's shape is normalised over this rest-frame range
MIN_COVERAGE = 0.99                  # share of a filter's response the redshifted grid must cover
MIN_Z_DISTANCE = 0.005               # absolute magnitudes below this redshift use it (DM(0) = −∞)
SPREAD_STRIDE = 8                    # the p(z) spread reads every 8th redshift node (Δz 0.2 by default)


SCORE_COLUMN = re.compile(r"sed_c\d+|rest_\w+|abs_\w+|mag_\w+")   # what `columns` can name


def is_sed_column(name: str) -> bool:
    """Whether a scores column is one of the SED network's (`SEDBasis.columns`)."""
    return SCORE_COLUMN.fullmatch(name) is not None


def normalised_log(spectra: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """log10 f_λ (n, G) shifted to a mean of 0 over `NORM_RANGE_AA` (the shape of each spectrum)."""
    lg = np.log10(np.maximum(np.asarray(spectra, np.float64), 1e-300))
    win = (wave >= NORM_RANGE_AA[0]) & (wave <= NORM_RANGE_AA[1])
    return lg - lg[:, win].mean(axis=1, keepdims=True)


def filter_column(name: str) -> str:
    """A filter's name as a column suffix: 'sdss2010-r' → 'sdss2010_r', a curve file → its stem."""
    stem = name.replace("\\", "/").rsplit("/", 1)[-1]
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    return "".join(ch if ch.isalnum() else "_" for ch in stem)


@dataclass
class SEDBasis:
    """The SED network's decoding and photometry tables (arrays float64).

    wave (G,): rest-frame Å; mean (G,), components (K, G): the log10 f_λ basis; scale: network
    output × scale = coefficient. z_nodes (Z,), distmod (Z,); detection (G, Z): the detection
    band's weights; rest_filters + rest_weights (G, R): rest-frame filters; colours: (column, filter
    a, filter b); absolute: filters with an absolute magnitude; observed: synthetic filter → (G, Z)
    weights (NaN where the grid does not cover the filter)."""
    wave: np.ndarray
    mean: np.ndarray
    components: np.ndarray
    scale: float
    z_nodes: np.ndarray
    distmod: np.ndarray
    detection: np.ndarray
    rest_filters: tuple
    rest_weights: np.ndarray
    colours: tuple = ()
    absolute: tuple = ()
    observed: dict = field(default_factory=dict)
    label_source: str = ""

    def _table(self, name: str) -> np.ndarray:
        """A weights table by name: 'components', 'detection', 'rest_weights' or a synthetic filter."""
        return self.observed[name] if name in self.observed else getattr(self, name)

    def _product(self, x: np.ndarray, name: str, stride: int = 1) -> np.ndarray:
        """x @ (the table `name`, every `stride`-th column) through the float32 kernel, rows
        independent of the batch (float64 out; NaN columns of a table — redshifts it does not
        cover — come out NaN)."""
        cache = self.__dict__.setdefault("_f32", {})
        key = (name, stride)
        if key not in cache:
            w = np.asarray(self._table(name), np.float64)[:, ::stride]
            bad = ~np.isfinite(w).all(axis=0)
            cache[key] = (np.ascontiguousarray(np.nan_to_num(w, nan=0.0), np.float32),
                          np.zeros(w.shape[1], np.float32), bad)
        w32, b32, bad = cache[key]
        out = dense(x, w32, b32).astype(np.float64)
        out[:, bad] = np.nan
        return out

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    # ---- columns --------------------------------------------------------------------------
    def coefficient_columns(self) -> list[str]:
        return [f"sed_c{k + 1}" for k in range(self.n_components)]

    def columns(self) -> dict[str, str]:
        """Every column `derived` returns, with its description, in output order."""
        out = {c: f"coefficient {k + 1} of the rest-frame SED on the model's log-flux basis (decode with "
                  "galaxy_spark.model.sed)" for k, c in enumerate(self.coefficient_columns())}
        for col, a, b in self.colours:
            out[col] = f"rest-frame {a} − {b} (AB) of the predicted SED"
        for f in self.absolute:
            out[f"abs_{filter_column(f)}"] = f"absolute AB magnitude in {f} (at z_phot, Planck18)"
        for f in self.observed:
            out[f"mag_{filter_column(f)}"] = f"synthetic observed AB magnitude in {f} at z_phot"
            out[f"mag_{filter_column(f)}_err"] = f"p(z)-weighted spread of the {f} magnitude"
        return out

    # ---- decoding ---------------------------------------------------------------------------
    def coefficients(self, raw: np.ndarray) -> np.ndarray:
        """Network outputs (n, K) → basis coefficients."""
        return np.asarray(raw, np.float64) * self.scale

    def log_spectra(self, coeffs: np.ndarray) -> np.ndarray:
        """log10 f_λ (n, G) of coefficient rows (normalised shape)."""
        return self.mean[None, :] + self._product(coeffs, "components")

    def spectra(self, coeffs: np.ndarray) -> np.ndarray:
        """f_λ (n, G), arbitrary units, shape normalised over `NORM_RANGE_AA`."""
        return 10.0 ** self.log_spectra(coeffs)

    def project(self, log_spectra: np.ndarray) -> np.ndarray:
        """Basis coefficients (n, K) of normalised log10 spectra (the least-squares fit)."""
        return (np.asarray(log_spectra, np.float64) - self.mean[None, :]) @ self.components.T

    # ---- photometry of spectra ---------------------------------------------------------------
    def _node_position(self, z: np.ndarray, stride: int = 1):
        """(index of the node below each z, weight of the node above) on every `stride`-th node."""
        zn = self.z_nodes[::stride]
        i = np.clip(np.searchsorted(zn, z, side="right") - 1, 0, zn.size - 2)
        w = np.clip((z - zn[i]) / (zn[i + 1] - zn[i]), 0.0, 1.0)
        return i, w

    @staticmethod
    def _mag(flux: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(flux > 0, -2.5 * np.log10(np.where(flux > 0, flux, 1.0)), np.nan)

    def _at_redshift(self, s: np.ndarray, name: str, z: np.ndarray) -> np.ndarray:
        """Maggies of spectra `s` (n, G) through table `name` at each row's redshift `z`: the
        weights of the two nodes around it, interpolated (NaN where a node is not covered)."""
        cols = self.__dict__.setdefault("_columns", {})
        if name not in cols:
            cols[name] = np.ascontiguousarray(np.asarray(self._table(name)).T, np.float32)   # (Z, G)
        wt = cols[name]
        i, w = self._node_position(z)
        w = w.astype(np.float32)[:, None]
        return _row_dot(np.asarray(s, np.float32), (1 - w) * wt[i] + w * wt[i + 1]).astype(np.float64)

    def detection_magnitude(self, s: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Synthetic detection-band magnitudes (no distance dimming) of rest-frame spectra `s`
        (n, G) moved to redshifts `z` (n,)."""
        return self._mag(self._at_redshift(s, "detection", np.asarray(z, np.float64)))

    def derived(self, coeffs: np.ndarray, z: np.ndarray, m_det: np.ndarray | None = None,
                pz: np.ndarray | None = None, pz_z: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The `columns` for coefficient rows at point redshifts `z`, scaled to the detection-band
        magnitudes `m_det` (absolute and synthetic magnitudes are NaN without them). With a binned
        p(z) (`pz` (n, B) at redshifts `pz_z` (B,)), each synthetic magnitude's `_err` is its
        p(z)-weighted standard deviation; without it, NaN."""
        coeffs = np.asarray(coeffs, np.float64)
        out = {c: coeffs[:, k] for k, c in enumerate(self.coefficient_columns())}
        if len(coeffs) == 0:
            out.update({c: np.zeros(0) for c in self.columns() if c not in out})
            return out
        # float32 spectra: the products are float32 anyway (magnitudes to ~1e-6), half the memory traffic
        s32 = np.exp(self.log_spectra(coeffs).astype(np.float32) * np.float32(np.log(10.0)))
        out.update(self.photometry(s32, z, m_det, pz, pz_z))
        return out

    def photometry(self, s: np.ndarray, z: np.ndarray, m_det: np.ndarray | None = None,
                   pz: np.ndarray | None = None, pz_z: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """`derived` without the coefficients, for any rest-frame spectra `s` (n, G) on `wave`."""
        n = len(s)
        z = np.nan_to_num(np.asarray(z, np.float64), nan=0.0)
        out = {}
        rest_mag = self._mag(self._product(s, "rest_weights"))            # (n, R)
        idx = {f: k for k, f in enumerate(self.rest_filters)}
        for col, a, b in self.colours:
            out[col] = rest_mag[:, idx[a]] - rest_mag[:, idx[b]]
        m_det = np.full(n, np.nan) if m_det is None else np.asarray(m_det, np.float64)
        det_z = self.detection_magnitude(s, z)
        zd = np.maximum(z, MIN_Z_DISTANCE)
        dm = np.interp(zd, self.z_nodes[1:], self.distmod[1:])
        for f in self.absolute:
            out[f"abs_{filter_column(f)}"] = m_det - dm - det_z + rest_mag[:, idx[f]]
        spread = self.observed and pz is not None and pz_z is not None
        if spread:
            # the p(z) bins located on the coarse nodes the spread is read on
            i, w = self._node_position(np.asarray(pz_z, np.float64), SPREAD_STRIDE)
            det_coarse = self._mag(self._product(s, "detection", SPREAD_STRIDE))
        for f in self.observed:
            col = f"mag_{filter_column(f)}"
            out[col] = m_det + self._mag(self._at_redshift(s, f, z)) - det_z
            if spread:
                colour = self._mag(self._product(s, f, SPREAD_STRIDE)) - det_coarse   # NaN: not covered
                out[f"{col}_err"] = _weighted_std((1 - w) * colour[:, i] + w * colour[:, i + 1],
                                                   np.asarray(pz, np.float64))
            else:
                out[f"{col}_err"] = np.full(n, np.nan)
        return out


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, Σ a·b (einsum's loop: a row's sum does not depend on the other rows, unlike a
    BLAS product's; `tests/test_scoring.py` checks the bits across batchings)."""
    return np.einsum("ng,ng->n", a, b)


def _weighted_std(values: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per row, the standard deviation of `values` (n, B) under weights `p` (n, B), NaNs skipped.
    The row sums go through the float32 kernel: numpy's reductions (sum, einsum) were seen to round
    a row differently with the batch around it."""
    ones = np.ones((values.shape[1], 1), np.float32)
    zero = np.zeros(1, np.float32)

    def row_sum(a):
        return dense(a, ones, zero)[:, 0].astype(np.float64)

    ok = np.isfinite(values)
    w = np.where(ok, p, 0.0)
    tot = row_sum(w)
    v = np.where(ok, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = row_sum(w * v) / tot
        var = row_sum(w * (v - mean[:, None]) ** 2) / tot
    return np.where(tot > 0, np.sqrt(np.maximum(var, 0.0)), np.nan)


# ---- persistence (inside the ensemble's JSON document and arrays) -------------------------------
ARRAYS = ("wave", "mean", "components", "z_nodes", "distmod", "detection", "rest_weights")


def to_parts(basis: SEDBasis) -> tuple[dict, dict]:
    doc = {"scale": float(basis.scale), "rest_filters": list(basis.rest_filters),
           "colours": [list(c) for c in basis.colours], "absolute": list(basis.absolute),
           "observed": list(basis.observed), "label_source": basis.label_source}
    arrays = {f"sed/{k}": getattr(basis, k) for k in ARRAYS}
    arrays.update({f"sed/observed/{i}": w for i, w in enumerate(basis.observed.values())})
    return doc, arrays


def from_parts(doc: dict, arrays: dict) -> SEDBasis:
    return SEDBasis(**{k: np.asarray(arrays[f"sed/{k}"], np.float64) for k in ARRAYS},
                    scale=float(doc["scale"]), rest_filters=tuple(doc["rest_filters"]),
                    colours=tuple(tuple(c) for c in doc["colours"]), absolute=tuple(doc["absolute"]),
                    observed={f: np.asarray(arrays[f"sed/observed/{i}"], np.float64)
                              for i, f in enumerate(doc["observed"])},
                    label_source=doc.get("label_source", ""))


def with_filters(basis: SEDBasis, names) -> SEDBasis:
    """A copy of `basis` with synthetic observed magnitudes in more filters: speclite names
    ('sdss2010-r', 'lsst2023-i', 'Euclid-VIS', …) or curve files (`filters.standard_curve`).
    ValueError for an unknown filter. Names already there are kept as they are."""
    from galaxy_spark.filters import observed_weights, standard_curve

    new = {}
    for name in names:
        if name in basis.observed or name in new:
            continue
        new[name] = observed_weights(basis.wave, *standard_curve(name), basis.z_nodes, MIN_COVERAGE)
    return replace(basis, observed={**basis.observed, **new})
