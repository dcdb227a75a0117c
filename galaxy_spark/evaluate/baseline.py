"""The BPZ baseline: template fitting (``galaxy_spark.fitting.bpz``) and the network on the same test
objects — metrics against every label set, throughput of both (objects/s) and their ratio, and the
three comparisons (emulation, spectroscopic, truth) per magnitude range.

The objects: at most ``cap`` of the test split, a deterministic subsample (the lowest values of a
salted ID hash, independent of the split hash), plus every spectroscopic test object, restricted to
objects with a detection-band magnitude. BPZ's PIT and CRPS come from its full p(z) grid
(``metrics.pit_from_grid``, ``crps_from_grid``); the network's from its five quantiles.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M
from galaxy_spark.evaluate.blocks import network_redshift_block, redshift_block
from galaxy_spark.evaluate.data import num
from galaxy_spark.features import id_hash_unit
from galaxy_spark.survey import Survey

BPZ_MAX_OBJECTS = 20000
BPZ_SALT = 0x5BD1E995  # second hash for the BPZ subsample (independent of the split hash)
COMPARISONS = {"catalogue": "emulation (vs the catalogue's template-fit values)",
               "spec": "spectroscopic (vs secure z_spec)", "truth": "truth (mock only)"}


def bpz_subsample(ids: np.ndarray, cap: int) -> np.ndarray:
    """Boolean mask of at most ``cap`` objects: the lowest values of a salted ID hash (deterministic,
    independent of the split hash, the same for every model evaluated on the same catalogue)."""
    ids = np.asarray(ids, np.int64)
    if ids.size <= cap:
        return np.ones(ids.size, bool)
    u = id_hash_unit(ids ^ np.int64(BPZ_SALT))
    keep = np.zeros(ids.size, bool)
    keep[np.argsort(u, kind="mergesort")[:cap]] = True
    return keep


def run_bpz(df: pd.DataFrame, survey: Survey) -> tuple[pd.DataFrame, dict]:
    """Fit BPZ to the rows; returns (its outputs with a ``pz`` column, timing). Timing: ``seconds``
    and ``objects_per_s`` of the fit with p(z) (after a warm-up), ``grid_seconds`` to build the
    model grid (not counted), ``n`` and the redshift grid ``z_grid``."""
    from galaxy_spark.fitting.bpz import BPZModel

    t0 = time.perf_counter()
    model = BPZModel(survey)
    grid_s = time.perf_counter() - t0
    model.fit(df.iloc[:20], return_pz=False)  # warm-up (prior tables, caches)
    t0 = time.perf_counter()
    res = model.fit(df, return_pz=True)
    secs = time.perf_counter() - t0
    return res, {"seconds": secs, "objects_per_s": len(df) / secs if secs > 0 else float("nan"),
                 "grid_seconds": grid_s, "n": int(len(df)), "z_grid": model.z}


def time_network(ensemble, df: pd.DataFrame, repeats: int = 3) -> dict:
    """Objects/s of an in-process ``Ensemble.predict`` on the rows (features included; best of
    ``repeats`` after a warm-up), to set against BPZ's on the same rows."""
    ensemble.predict(df.iloc[:50])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ensemble.predict(df)
        best = min(best, time.perf_counter() - t0)
    return {"seconds": best, "objects_per_s": len(df) / best if best > 0 else float("nan"), "n": int(len(df)),
            "repeats": repeats}


def baseline_comparison(df: pd.DataFrame, sets: dict, mag: np.ndarray, survey: Survey, cap: int,
                        ensemble=None) -> tuple[dict, pd.DataFrame]:
    """BPZ and the network on the same (subsampled) test objects: metrics per label set, throughput,
    ratio (metrics.json ``baseline``); plus the per-object table (ID, magnitude, zb and its interval,
    odds, z_phot, and per label set ``z_<labels>``, ``galaxy_<labels>``) the plots and
    ``comparison_table`` use. Without ``ensemble`` the network's throughput is NaN."""
    from galaxy_spark.features import build_features

    idc = survey.id_column
    keep = bpz_subsample(df[idc].to_numpy(np.int64), cap)
    if "spec" in sets:     # every spectroscopic test object: the spectroscopic comparison is small
        keep |= np.isfinite(sets["spec"]["stellarity"])
    # objects BPZ can fit like the network: a detection-band magnitude
    keep &= np.isfinite(mag)
    sub = df.loc[keep].reset_index(drop=True)
    res, timing = run_bpz(sub, survey)
    z_grid = timing.pop("z_grid")
    pz = np.stack(res["pz"].to_numpy()) if len(res) else np.empty((0, z_grid.size))
    out = {"n": int(len(sub)), "cap": int(cap), "subsample": "lowest id_hash_unit(ID ^ salt) of the test "
           "objects with a detection-band magnitude", "bpz": {"timing": timing}, "network": {}}
    if ensemble is not None:
        out["network"]["timing"] = time_network(ensemble, sub)
        _, ok = build_features(sub, ensemble.feature_spec)
        out["network"]["timing"]["n_scorable"] = int(ok.sum())
    else:
        out["network"]["timing"] = {"objects_per_s": float("nan"), "note": "model not loaded"}
    rn, rb = out["network"]["timing"]["objects_per_s"], timing["objects_per_s"]
    out["throughput_ratio"] = rn / rb if np.isfinite(rn) and rb > 0 else float("nan")
    smag = mag[keep]
    frame = pd.DataFrame({idc: sub[idc], "mag": smag, "zb": res["zb"].to_numpy(),
                          "zb_min": res["zb_min"].to_numpy(), "zb_max": res["zb_max"].to_numpy(),
                          "odds": res["odds"].to_numpy(), "z_phot": num(sub, "z_phot")})
    for src, lab in sets.items():
        gal = lab["stellarity"][keep] == 0
        zt = lab["redshift"][keep]
        frame[f"z_{src}"] = zt
        frame[f"galaxy_{src}"] = gal
        pit = M.pit_from_grid(pz[gal], z_grid, zt[gal]) if gal.any() else np.empty(0)
        crps = M.crps_from_grid(pz[gal], z_grid, zt[gal]) if gal.any() else np.empty(0)
        out["bpz"][src] = {"redshift": redshift_block(
            res["zb"].to_numpy()[gal], zt[gal], smag[gal], lo95=res["zb_min"].to_numpy()[gal],
            hi95=res["zb_max"].to_numpy()[gal], pit=pit, crps=crps)}
        out["network"][src] = {"redshift": network_redshift_block(sub, gal, zt, smag)}
    return out, frame


def comparison_table(frame: pd.DataFrame, bright: float, faint: float) -> pd.DataFrame:
    """Network and BPZ on the same galaxies, per comparison (emulation, spectroscopic, truth) and
    detection-band magnitude range (< bright, bright–faint, all; the survey file's
    detection.bright_mag and completeness_mag): σ_NMAD, outlier fraction, n. ``frame`` is
    ``baseline_comparison``'s per-object table."""
    rows = []
    for src, what in COMPARISONS.items():
        if f"z_{src}" not in frame:
            continue
        for lo, hi in ((0.0, bright), (bright, faint), (0.0, 99.0)):
            sel = frame[f"galaxy_{src}"].to_numpy(bool) & np.isfinite(frame[f"z_{src}"].to_numpy(float)) \
                & (frame["mag"] >= lo) & (frame["mag"] < hi)
            zt = frame[f"z_{src}"].to_numpy(float)[sel]
            row = {"comparison": what, "labels": src, "mag": f"{lo:g}-{hi:g}" if hi < 99 else "all",
                   "n": int(sel.sum())}
            for who, col in (("network", "z_phot"), ("bpz", "zb")):
                m = M.photoz_metrics(frame[col].to_numpy(float)[sel], zt)
                row[f"{who}_sigma_nmad"], row[f"{who}_outlier_frac"] = m["sigma_nmad"], m["outlier_frac"]
            rows.append(row)
    return pd.DataFrame(rows)
