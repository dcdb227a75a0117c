"""Tests of the mock catalogue generator (jobs/mock.py, galaxy_spark/mock)."""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_spark.survey import load_survey

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "mock.py"
from conftest import REAL_ROWS as REAL  # noqa: E402  (tests/data, shipped with the tests)


def run_job(*args):
    return subprocess.run([sys.executable, str(JOB), "--quiet", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def survey():
    return load_survey()


@pytest.fixture(scope="module")
def mock_main():
    """jobs/mock.py's main() in this process: the same code as the command, and the mock's model
    set-up (most of a small run's time) is computed once per process and cached."""
    spec = importlib.util.spec_from_file_location("mock_job", JOB)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory, mock_main):
    """The same 2,000-object mock twice (seed 7) and once with seed 8. The first through the
    command in a fresh process (started at once, it runs while the others are made), the others
    by the job's main() here: same bytes across processes and with a warm cache."""
    d = tmp_path_factory.mktemp("mock")
    a, b, c = d / "a.csv", d / "b.csv", d / "c.csv"
    proc = subprocess.Popen([sys.executable, str(JOB), "--quiet", "--objects", "2000", "--seed", "7", "--format",
                             "csv", "--out", str(a)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        for path, seed in ((b, 7), (c, 8)):
            assert mock_main(["--quiet", "--objects", "2000", "--seed", str(seed), "--format", "csv",
                              "--out", str(path)]) == 0
        err = proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return a, b, c


@pytest.fixture(scope="module")
def table20k(survey):
    from galaxy_spark.mock import generate_table

    return pd.DataFrame({k: v for k, v in generate_table(survey, 20000, 3).items()})


def _md5(p):
    return hashlib.md5(Path(p).read_bytes()).hexdigest()


def test_same_seed_same_bytes_and_different_seed_differs(small_csv):
    a, b, c = small_csv
    assert _md5(a) == _md5(b)
    assert _md5(a) != _md5(c)


def test_csv_header_columns_and_types(small_csv, survey):
    d = pd.read_csv(small_csv[0])
    expected = [c.name for c in survey.csv_columns()] + [c.name for c in survey.truth]
    assert list(d.columns) == expected
    assert len(survey.public_columns()) == 113
    assert len(d) == 2000
    assert d["F814W_Image"].str.match(r"^f0\dp0\d_F814W_\d\.swp\.fits$").all()
    assert set(d["is_star"].unique()) <= {0, 1}
    # writer formats: RA/Dec with 4 decimals, magnitudes with 3
    first = small_csv[0].read_text().splitlines()[1].split(",")
    cols = list(d.columns)
    assert len(first[cols.index("RA")].split(".")[1]) == 4
    assert len(first[cols.index("F814W")].split(".")[1]) == 3


def test_sentinels(small_csv, survey):
    d = pd.read_csv(small_csv[0])
    nd = survey.sentinels["not_detected_magnitude"]
    no = survey.sentinels["not_observed_magnitude"]
    n_nd = n_no = 0
    for b in survey.band_names:
        m, e = d[b], d[survey.error_column(b)]
        nondet, notobs = m == nd, m == no
        n_nd += nondet.sum()
        n_no += notobs.sum()
        assert (e[notobs] == survey.sentinels["not_observed_error"]).all(), b
        # non-detections carry the 1σ limiting magnitude: a plausible faint magnitude
        assert ((e[nondet] > 18) & (e[nondet] < 30)).all(), b
        ok = ~nondet & ~notobs
        assert ((m[ok] > 5) & (m[ok] < 40)).all(), b
        assert ((e[ok] >= 0) & (e[ok] < 10)).all(), b
    assert n_nd > 0 and n_no > 0
    det = survey.detection_band
    assert ((d[det] > 10) & (d[det] < 27.5)).all()
    assert (d["MagPrior"] == d[det]).all()
    # nfobs counts the detected bands
    detected = sum(((d[b] != nd) & (d[b] != no)).astype(int) for b in survey.band_names)
    assert (detected == d["nfobs"]).all()
    # Stellar_Flag is exactly 0.5 beyond the bright regime
    assert (d.loc[d[det] >= 22.5, "Stellar_Flag"] == 0.5).all()
    assert d.loc[d["Chi2"] != 99, "Chi2"].between(0, 99).all()


def test_ids_unique_and_consistent(small_csv, survey):
    d = pd.read_csv(small_csv[0])
    assert d["ID"].is_unique
    ids = d["ID"].astype(np.int64)
    assert ids.astype(str).str.len().eq(survey.id_digits).all()
    s = ids.astype(str)
    assert (s.str[3].astype(int) == d["Field"]).all()
    assert (s.str[4].astype(int) == d["Pointing"]).all()
    assert (s.str[5].astype(int) == d["CCD"]).all()
    assert set(zip(d["Field"], d["Pointing"], d["CCD"])) == set(survey.ccd_catalogues())
    counts = d.groupby(["Field", "Pointing", "CCD"]).size()
    assert counts.max() - counts.min() <= 1          # equal-area CCDs


def test_ascii_layout(tmp_path, survey, mock_main):
    out = tmp_path / "ascii"
    assert mock_main(["--quiet", "--objects", "960", "--seed", "5", "--format", "ascii", "--out", str(out)]) == 0
    files = sorted(out.iterdir())
    assert len(files) == 48
    expected = {survey.ascii_file_pattern.format(field=f, pointing=p, ccd=c) for f, p, c in survey.ccd_catalogues()}
    assert {f.name for f in files} == expected
    names = [c.name for c in survey.public_columns()] + [c.name for c in survey.truth]
    text = files[0].read_text().splitlines()
    header = [ln for ln in text if ln.startswith("#")]
    assert header[0].startswith("##")
    assert header[-1].split()[1:] == names
    d = pd.read_csv(files[0], sep=r"\s+", comment="#", header=None, names=names)
    assert len(d) == 20 and d.shape[1] == 113 + len(survey.truth)
    assert d["ID"].is_unique


def test_bad_arguments(tmp_path):
    for args in (["--objects", 0], ["--objects", -5], ["--objects", "abc"], ["--format", "parquet"]):
        r = run_job(*args, "--out", tmp_path / "x.csv")
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    (tmp_path / "file").write_text("x")
    r = run_job("--objects", 10, "--out", tmp_path / "file" / "x.csv")
    assert r.returncode != 0 and r.stderr.strip().startswith("error: ")


def test_redshift_distribution_and_star_fraction(table20k):
    d = table20k
    g = d[d["is_star"] == 0]
    assert abs(g.loc[g["F814W"] < 22.5, "z_true"].mean() - 0.56) < 0.06
    assert abs(g.loc[g["F814W"] < 24.5, "z_true"].mean() - 0.86) < 0.08
    frac = d["is_star"].mean()
    assert 0.015 < frac < 0.05
    assert 15.0 < d["F814W"].quantile(0.001) and d["F814W"].quantile(0.99) < 26.3
    # stars: stell near 1 when bright, galaxies near 0
    s = d[(d["is_star"] == 1) & (d["F814W"] < 20)]
    assert s["stell"].median() > 0.9
    assert d.loc[(d["is_star"] == 0) & (d["F814W"] < 21), "stell"].median() < 0.1
    assert (d.loc[d["is_star"] == 1, "z_true"] == 0).all()


def test_label_precision(table20k):
    g = table20k[table20k["is_star"] == 0]
    ez = (g["zb_1"] - g["z_true"]) / (1 + g["z_true"])
    bright = ez[g["F814W"] < 22.5]
    nmad = 1.4826 * np.median(np.abs(bright - bright.median()))
    assert 0.007 < nmad < 0.015          # the survey's published 1.0% (Molino et al. 2014)
    faint = ez[(g["F814W"] >= 22.5) & (g["F814W"] < 24.5)]
    assert 1.4826 * np.median(np.abs(faint - faint.median())) > nmad
    # outliers rise with magnitude, odds fall
    out_b = (np.abs(bright) > 0.15).mean()
    out_f = (np.abs(ez[g["F814W"] >= 24.5]) > 0.15).mean()
    assert out_b < 0.03 and out_f > out_b
    odds = table20k.groupby(np.floor(table20k["F814W"]))["Odds_1"].median()
    assert odds.loc[20] > 0.5 and odds.loc[24] < 0.4
    # mass relation with the per-type constants
    t = np.floor(table20k["Tb_1"]).clip(1, 10).astype(int)
    c = table20k["Stell_Mass_1"] + 0.4 * table20k["M_Abs_1"]
    from galaxy_spark.mock.labels import MASS_C

    for k in np.unique(t):       # the labelling templates reach types ~1.5–8.8
        assert abs(c[t == k].median() - MASS_C[k - 1]) < 0.01, k
    assert table20k["t_ml"].between(1, 11).all()
    assert table20k["Tb_1"].between(1, 11).all() and g["type_true"].between(1, 11).all()
    assert (table20k["zb_Min_1"] <= table20k["zb_1"]).all() and (table20k["zb_Max_1"] >= table20k["zb_1"]).all()


def test_labels_are_template_fits_of_the_written_photometry(small_csv, survey):
    """The catalogue labels are a function of the photometry in the file (as BPZ's are in the
    real catalogue), not of the truth: refitting the written magnitudes reproduces them."""
    from galaxy_spark.mock.core import context

    df = pd.read_csv(small_csv[0]).head(300)
    ctx = context(survey)
    mag = np.stack([df[b].to_numpy(float) for b in ctx.bands], 1)
    err = np.stack([df[survey.error_column(b)].to_numpy(float) for b in ctx.bands], 1)
    observed = mag > -90
    detected = observed & (mag < 90)
    lab = ctx.labeller.labels(mag, err, detected, observed, df[survey.detection_band].to_numpy(float), ctx.det)
    for role in ("redshift", "redshift_low", "redshift_high", "spectral_type", "redshift_odds", "redshift_ml",
                 "absolute_magnitude", "stellar_mass"):
        np.testing.assert_allclose(lab[role], df[survey.label(role)], atol=6e-4, err_msg=role)
    # and moving the truth without touching the photometry changes nothing: no truth input exists
    assert "z_true" not in ctx.labeller.labels.__code__.co_varnames


def test_split_counts_deterministic():
    from galaxy_spark.mock import split_counts

    c = split_counts(446_343, np.ones(48))
    assert c.sum() == 446_343 and c.max() - c.min() <= 1


def test_validation_reader(survey):
    from galaxy_spark.studies.mock_validation import read_vizier

    r = read_vizier(survey, REAL)
    assert len(r) == 817
    assert (r["F768W_state"] == 2).sum() == 17
    assert (r["F365W_state"] == 1).sum() == 218


def test_noise_free_magnitudes_match_direct_sed_integration(survey):
    """The template grid (z and A_V interpolation) reproduces a direct integration of each
    galaxy's SED at its z_true through the survey curves (Madau IGM, Calzetti dust)."""
    from astropy.cosmology import Planck18
    from desc_bpz.bpz_tools_py3 import etau_madau

    from galaxy_spark.filters import ab_magnitudes, load_responses
    from galaxy_spark.fitting import templates as seds
    from galaxy_spark.mock.core import context

    model = context(survey).gal
    g = model.draw(np.random.default_rng(123), 300)
    wave, tflux, _ = seds.load_templates()
    resp = load_responses(survey)
    idx = np.flatnonzero((g.z > 0.05) & (g.z < 3.0))[:12]
    assert idx.size >= 8
    for i in idx:
        z, av = g.z[i], g.av[i]
        f = g.coeffs[i] @ (tflux * 10 ** (-0.4 * seds._calzetti_mag(wave, av)))
        lobs = wave * (1 + z)
        igm = etau_madau(lobs, z) if z > 0.1 else 1.0
        fobs = f / (1 + z) * 10 ** (-0.4 * Planck18.distmod(z).value) * igm
        direct = ab_magnitudes(lobs, fobs, resp)
        grid = -2.5 * np.log10(g.maggies[i])
        assert np.max(np.abs(direct - grid)) < 0.02, (z, av, np.round(direct - grid, 3))


def test_truth_and_photometry_stay_aligned(survey):
    """Without noise, the catalogue magnitudes of every galaxy are its SED's at z_true: a colour
    regression trained on half the noise-free galaxies predicts z_true of the other half to ~1%."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from galaxy_spark.mock import photometry as ph
    from galaxy_spark.mock.core import generate_table

    orig = ph.observe
    try:
        ph.observe = lambda rng, f, m5, ap: (f.copy(), orig(rng, f, m5, ap)[1])
        t = generate_table(survey, 6000, 21)
    finally:
        ph.observe = orig
    g = t["is_star"] == 0
    m = np.stack([t[b][g] for b in survey.band_names], 1)
    m = np.where(np.abs(m) > 90, np.nan, m)
    det = survey.band_names.index(survey.detection_band)
    X = np.c_[m - m[:, [det]], m[:, det]]
    z = t["z_true"][g]
    half = len(z) // 2
    p = HistGradientBoostingRegressor(max_iter=300, random_state=0).fit(X[:half], z[:half]).predict(X[half:])
    e = (p - z[half:]) / (1 + z[half:])
    assert 1.4826 * np.median(np.abs(e - np.median(e))) < 0.025


def test_photometry_carries_redshift_information(table20k, survey):
    """A quick BPZ (CWW+Kinney) on bright mock galaxies reaches σ_NMAD ≲ 0.035 against z_true
    (the mock's SEDs are a kcorrect-mixture family, as in published BPZ-on-mock tests)."""
    from galaxy_spark.fitting import fit_bpz

    g = table20k[(table20k["is_star"] == 0) & (table20k["F814W"] < 22.5)].iloc[:800].copy()
    for b in survey.band_names:
        m, e = g[b].to_numpy(float), g[survey.error_column(b)].to_numpy(float)
        st = np.where(m == 99, 1, np.where(m == -99, 2, 0))
        g[b] = np.where(st == 0, m, np.nan)
        g[survey.error_column(b)] = np.where(st == 0, e, np.nan)
        g[f"{b}_lim"] = np.where(st == 1, e, np.nan)
        g[f"{b}_state"] = st
    r = fit_bpz(g, survey)
    z = g["z_true"].to_numpy()
    e = (r["zb"].to_numpy() - z) / (1 + z)
    nmad = 1.4826 * np.median(np.abs(e - np.median(e)))
    assert nmad < 0.035, nmad
    assert (np.abs(e) > 0.15).mean() < 0.05


def test_bright_stars_look_stellar(table20k):
    d = table20k
    s = d[(d["is_star"] == 1) & (d["F814W"] < 22.5)]
    assert (s["stell"] > 0.9).mean() > 0.85
    g = d[(d["is_star"] == 0) & d["F814W"].between(21, 23)]
    assert 0.02 < (g["stell"] > 0.9).mean() < 0.15       # compact galaxies, as in the real rows


def test_noise_depth_offset_recovers_a_known_shift(survey):
    """Errors 0.5 mag too shallow (×10^0.2) in one band are measured as +0.5 mag; no bias → 0."""
    from galaxy_spark.studies.mock_validation import noise_depth_offset, read_vizier

    real = read_vizier(survey, REAL)
    mock = pd.concat([real] * 4, ignore_index=True)          # enough rows per bin for the estimator
    assert abs(noise_depth_offset(survey, real, mock, "F613W")) < 1e-9
    e = survey.error_column("F613W")
    mock[e] = mock[e] * 10 ** 0.2
    assert noise_depth_offset(survey, real, mock, "F613W") == pytest.approx(0.5, abs=0.01)


def test_mock_noise_follows_each_bands_noise_depth(survey):
    """Deepening one band's noise_depth_5sigma by 1 mag shrinks its sky-limited errors by 10^0.4
    (and no other band's); the written non-detection limits stay at depth_5sigma + 1.747."""
    import dataclasses

    from galaxy_spark.mock import photometry as ph

    bands = survey.band_names
    deeper = dataclasses.replace(
        survey, bands=tuple(dataclasses.replace(b, noise_depth_5sigma=b.noise_depth_5sigma + 1.0)
                            if b.name == "F954W" else b for b in survey.bands))
    a, b = ph.noise_depths(survey, bands), ph.noise_depths(deeper, bands)
    k = bands.index("F954W")
    assert b[k] - a[k] == pytest.approx(1.0) and np.delete(b - a, k).max() == 0
    ap = np.ones(1)
    faint = np.full((1, len(bands)), 1e-12)                # far below the floor: sky-limited
    ratio = ph.flux_sigma(faint, a, ap) / ph.flux_sigma(faint, b, ap)
    assert ratio[0, k] == pytest.approx(10 ** 0.4, rel=1e-6)
    assert ph.band_depths(survey, bands)[k] == survey.band("F954W").depth_5sigma
