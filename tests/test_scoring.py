"""Scoring: the session's tiny model (a private copy of its SQLite MLflow store), real Spark (the
shared in-process local[2] session) and the CLI for the bad-input paths."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from galaxy_spark.estimate import batch as B
from galaxy_spark.estimate import coverage as C
from galaxy_spark.estimate import job as J
from galaxy_spark.features import in_test_split
from galaxy_spark.io import commit as K
from galaxy_spark.model.registry import resolve_model
from galaxy_spark.survey import NOT_DETECTED, load_survey
from synthetic import canonical_frame, job_env, use_tracking_uri, write_partitioned

REPO = Path(__file__).resolve().parent.parent
from galaxy_spark.model.heads import output_table

ESTIMATE_COLS = [c.name for c in output_table({})]


def _env(workdir):
    return job_env(workdir)


def catalogue_frame(n=1200, seed=5) -> pd.DataFrame:
    sv = load_survey()
    df = canonical_frame(sv, n=n, seed=seed)
    det = sv.detection_band
    # one unscorable object: no detection-band magnitude
    df.loc[0, det] = np.nan
    df.loc[0, sv.error_column(det)] = np.nan
    df.loc[0, f"{det}_lim"] = 25.0
    df.loc[0, f"{det}_state"] = NOT_DETECTED
    return df


@pytest.fixture(scope="module")
def env(tmp_path_factory, model_store, spark):
    """A private copy of the session's model store, a 1,200-row catalogue, the shared Spark session."""
    d = model_store(tmp_path_factory.mktemp("score"))
    cat = catalogue_frame()
    write_partitioned(cat, d / "catalog")
    with use_tracking_uri(_env(d)["MLFLOW_TRACKING_URI"]):
        model = resolve_model("models:/galaxy-ensemble@champion")
        yield {"dir": d, "catalog": d / "catalog", "frame": cat, "spark": spark, "model": model}


def read_scores(path) -> pd.DataFrame:
    t = ds.dataset(str(path), format="parquet", partitioning="hive").to_table().to_pandas()
    return t.sort_values("ID").reset_index(drop=True)


def score(env, out, **kw):
    after = kw.pop("after_commit", None)
    opts = J.JobOptions(catalog=str(env["catalog"]), out=str(out), model=kw.pop("model", "models:/galaxy-ensemble@champion"),
                        **kw)
    lines = []
    res = J.run_scoring(opts, spark=env["spark"], echo=lines.append, after_commit=after)
    return res, lines


# ---- the main path ----------------------------------------------------------------------------
def test_scores_match_predict_conserve_ids_and_carry_provenance(env, tmp_path):
    out = tmp_path / "scores"
    res, lines = score(env, out)
    cat = env["frame"]
    assert res["rows_in"] == res["rows_out"] == len(cat)
    assert any(f"{len(cat)} rows in = {len(cat)} rows scored" in ln for ln in lines)
    sc = read_scores(out)
    assert len(sc) == len(cat) and sc["ID"].is_unique
    assert set(sc["ID"]) == set(cat["ID"])
    ens = env["model"].ensemble
    sed_cols = list(ens.sed.columns())
    assert "rest_u_minus_v" in sed_cols and "mag_sdss2010_r_err" in sed_cols      # the default preset's SED network
    assert set(B.output_columns("ID", load_survey().detection_band, B.estimate_names(ens))) == set(sc.columns)

    # exactly Ensemble.predict on the same batches (one file = one Arrow batch per Field here) and
    # the same BLAS threading (Spark gives each Python worker OMP_NUM_THREADS=1) ...
    from threadpoolctl import threadpool_limits

    for f in sorted(cat["Field"].unique()):
        part = pq.read_table(next((env["catalog"] / f"Field={f}").glob("*.parquet"))).to_pandas()
        with threadpool_limits(1):
            ref = ens.predict(part).set_index(part["ID"].to_numpy())
        got = sc.set_index("ID").loc[part["ID"].to_numpy()]
        assert list(ref.columns) == B.estimate_names(ens)
        for c in ref.columns:        # served = batch: every estimate column, names and bits
            np.testing.assert_array_equal(got[c].to_numpy(float), ref[c].to_numpy(float, na_value=np.nan),
                                          err_msg=f"Field {f} {c}")
    # ... and dtypes: the Parquet files hold the head table's
    schema = pq.read_schema(next(out.glob("Field=*/*.parquet")))
    for c in ens.output_table():
        assert str(schema.field(c.name).type) == {"float64": "double", "int32": "int32"}[c.dtype], c
    # ... and to float32 precision against one whole-catalogue call (GEMM order depends on batch shape)
    whole = ens.predict(cat.sort_values("ID").reset_index(drop=True))
    np.testing.assert_allclose(sc["p_star"], whole["p_star"], atol=1e-5)
    np.testing.assert_allclose(sc["log_stellar_mass"], whole["log_stellar_mass"], rtol=1e-4, atol=1e-4)

    # the unscorable row: present, null estimates, flag 1
    bad = sc[sc["ID"] == cat.loc[0, "ID"]].iloc[0]
    assert bad["quality_flags"] & B.FLAG_NOT_SCORABLE
    assert pd.isna(bad["z_phot"]) and pd.isna(bad["p_star"]) and pd.isna(bad["star_class"])
    good = sc[sc["ID"] != cat.loc[0, "ID"]]
    assert good["z_phot"].notna().all() and (good["quality_flags"] & B.FLAG_NOT_SCORABLE == 0).all()
    assert ((good["star_class"] == 1) == ((good["quality_flags"] & B.FLAG_STAR) > 0)).all()
    assert ((good["star_class"] == 1) == (good["p_star"] >= 0.5)).all()
    np.testing.assert_allclose(good["z_phot_err"], (good["z_phot_hi68"] - good["z_phot_lo68"]) / 2)

    # provenance: one model, one timestamp for the whole job
    m = env["model"]
    assert set(sc["model_name"]) == {"galaxy-ensemble"} and set(sc["model_version"]) == {"1"}
    assert set(sc["model_run_id"]) == {m.run_id} and len(m.run_id) == 32
    assert sc["scored_at"].nunique() == 1
    man = json.loads((out / "_manifest.json").read_text())
    assert (out / "_SUCCESS").exists()
    assert sum(v["rows"] for v in man["fields"].values()) == len(cat)
    assert man["fields"]["2"]["model"]["version"] == "1"
    assert not list(tmp_path.glob("scores.staging-*")) and not list(out.glob("_old-*"))


def test_synthetic_filters_add_columns_equal_to_predict(env, tmp_path):
    """--synthetic-filters: one magnitude column (+ spread) per filter, speclite names and curve
    files alike, the numbers `Ensemble.predict` gives with the same filters; bad names are clear errors."""
    curve = tmp_path / "my_band.dat"
    w = np.arange(5000.0, 6001.0, 10.0)
    np.savetxt(curve, np.c_[w, np.where((w > 5100) & (w < 5900), 1.0, 0.0)])
    out = tmp_path / "scores"
    res, _ = score(env, out, synthetic_filters=("lsst2023-i", str(curve)))
    sc = read_scores(out)
    assert res["rows_in"] == res["rows_out"] == len(sc)
    for c in ("mag_lsst2023_i", "mag_lsst2023_i_err", "mag_my_band", "mag_my_band_err", "mag_sdss2010_r"):
        assert c in sc.columns, c
    gal = sc["z_phot"].notna()
    assert sc.loc[gal, "mag_lsst2023_i"].notna().mean() > 0.99
    assert (sc.loc[gal, "mag_lsst2023_i_err"].dropna() >= 0).all()
    ens = env["model"].ensemble.with_synthetic_filters(["lsst2023-i", str(curve)])
    ref = ens.predict(env["frame"]).set_index(env["frame"]["ID"].to_numpy())
    got = sc.set_index("ID").loc[env["frame"]["ID"].to_numpy()]
    np.testing.assert_allclose(got["mag_lsst2023_i"], ref["mag_lsst2023_i"], atol=1e-4)
    np.testing.assert_allclose(got["mag_my_band"], ref["mag_my_band"], atol=1e-4)
    from galaxy_spark.errors import InputError

    with pytest.raises(InputError, match="unknown filter 'sdss2010-q'"):
        score(env, tmp_path / "bad", synthetic_filters=("sdss2010-q",))


def test_rerun_is_identical_and_model_uri_forms_agree(env, tmp_path):
    out = tmp_path / "scores"
    score(env, out)
    first = read_scores(out)
    score(env, out, model="models:/galaxy-ensemble/1")
    second = read_scores(out)
    pd.testing.assert_frame_equal(first.drop(columns="scored_at"), second.drop(columns="scored_at"))
    run_id = env["model"].run_id
    m = resolve_model(f"runs:/{run_id}/ensemble")
    assert (m.name, m.version, m.run_id) == ("galaxy-ensemble", "1", run_id)


def _next_second(stamp) -> None:
    """Sleep until the clock is past `stamp` (a whole-second UTC timestamp)."""
    while pd.Timestamp.now(tz="UTC").floor("s") <= stamp:
        time.sleep(0.05)


def test_crash_after_one_field_keeps_previous_scores_and_rerun_completes(env, tmp_path):
    out = tmp_path / "scores"
    score(env, out)
    before = read_scores(out)

    def boom(field):
        raise RuntimeError(f"injected crash after committing Field {field}")

    _next_second(before["scored_at"].max())     # scored_at has one-second resolution; scoring is faster
    with pytest.raises(RuntimeError, match="injected crash"):
        score(env, out, after_commit=boom)
    mid = read_scores(out)                      # still readable, every row there, estimates unchanged
    assert len(mid) == len(before) and set(mid["ID"]) == set(before["ID"])
    pd.testing.assert_frame_equal(mid.drop(columns="scored_at"), before.drop(columns="scored_at"))
    assert mid["scored_at"].nunique() == 2      # Field 2 is from the crashed job, the rest from the first
    assert not (out / "_SUCCESS").exists()
    assert not list(tmp_path.glob("scores.staging-*"))
    assert not list(out.glob("_commit-*")) and not list(out.glob("_old-*"))   # each Field's commit finished
    res, _ = score(env, out)
    assert res["rows_out"] == len(before) and (out / "_SUCCESS").exists()
    assert read_scores(out)["scored_at"].nunique() == 1


def test_recover_restores_a_field_caught_between_renames(tmp_path):
    out = tmp_path / "scores"
    (out / "_old-abc-Field=2").mkdir(parents=True)
    (out / "_old-abc-Field=2" / "part.parquet").write_text("x")
    (out / "Field=3").mkdir()
    (out / "_old-def-Field=3").mkdir()
    (tmp_path / "scores.staging-999999999-tok").mkdir()
    notes = J.recover_scores(out)
    assert (out / "Field=2" / "part.parquet").exists()
    assert not (out / "_old-def-Field=3").exists() and not (tmp_path / "scores.staging-999999999-tok").exists()
    assert any("restored Field=2" in n for n in notes)


def _field_commit_setup(tmp_path):
    """Scores with Fields 2 and 3 ("old"), and a staged new Field 2, as score_fields leaves them."""
    out = tmp_path / "scores"
    for f in (2, 3):
        (out / f"Field={f}").mkdir(parents=True)
        (out / f"Field={f}" / "part.parquet").write_text("old")
    staging = K.staging_dir(out, "tok")
    (staging / "Field=2").mkdir(parents=True)
    (staging / "Field=2" / "part.parquet").write_text("new")
    return out, staging


def _crash_on_rename(monkeypatch, crash) -> None:
    """io.commit's n-th rename (to `dst`) raises KeyboardInterrupt, as a killed process would stop
    there, where crash(n, dst) is true; monkeypatch.undo() ends it."""
    real, calls = os.rename, {"n": 0}

    def rename(a, b):
        calls["n"] += 1
        if crash(calls["n"], Path(b)):
            raise KeyboardInterrupt("simulated crash")
        real(a, b)

    monkeypatch.setattr(K.os, "rename", rename)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_field_commit_interrupted_after_its_journal_is_rolled_forward(tmp_path, monkeypatch, fail_at):
    """A crash once the journal is written (before any rename, or between the two) ends with the
    new Field after recovery, however the staging directory of the dead job is cleaned."""
    out, staging = _field_commit_setup(tmp_path)
    _crash_on_rename(monkeypatch, lambda n, dst: n == fail_at)
    with pytest.raises(KeyboardInterrupt):
        J.commit_field(staging, out, 2, "tok")
    monkeypatch.undo()
    assert [p.name for p in out.glob("_commit-*")] == ["_commit-Field=2-tok.json"]   # inside the scores
    assert (out / "Field=2").exists() == (fail_at == 1)
    notes = J.recover_scores(out)          # this pid's staging counts as stale: recovery must use it first
    assert (out / "Field=2" / "part.parquet").read_text() == "new"
    assert (out / "Field=3" / "part.parquet").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["Field=2", "Field=3"] and not staging.exists()
    assert any("finished the interrupted commit" in n for n in notes)


def test_field_commit_never_deletes_the_only_copy(tmp_path, monkeypatch):
    """Journal written, old Field renamed aside, and then the staged one lost: recovery puts the
    old Field back instead of deleting it with the other leftovers."""
    out, staging = _field_commit_setup(tmp_path)
    _crash_on_rename(monkeypatch, lambda n, dst: not dst.name.startswith("_old-"))   # dies after the 1st
    with pytest.raises(KeyboardInterrupt):
        J.commit_field(staging, out, 2, "tok")
    monkeypatch.undo()
    assert not (out / "Field=2").exists() and (out / "_old-tok-Field=2").is_dir()
    shutil.rmtree(staging)
    notes = J.recover_scores(out)
    assert (out / "Field=2" / "part.parquet").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["Field=2", "Field=3"]
    assert any("restored" in n for n in notes)


def test_fields_subset_with_monte_carlo_matches_pure_function(env, tmp_path):
    out = tmp_path / "scores"
    res, _ = score(env, out, fields="3,2", mc_samples=6)
    assert sorted(p.name for p in out.glob("Field=*")) == ["Field=2", "Field=3"]
    cat = env["frame"]
    sub = cat[cat["Field"].isin([2, 3])].sort_values("ID").reset_index(drop=True)
    sc = read_scores(out)
    assert res["rows_out"] == len(sub) == len(sc)
    ref = B.score_frame(env["model"].ensemble, sub, B.ScoreOptions(mc_samples=6))
    for c in ("z_phot", "z_phot_lo95", "p_star_err", "log_stellar_mass_err"):
        np.testing.assert_allclose(sc[c], ref[c], rtol=1e-5, atol=1e-4, err_msg=c)
    assert sc.loc[sc["quality_flags"] & 1 == 0, "p_star_err"].notna().all()


# ---- Monte Carlo (pure) -------------------------------------------------------------------------
def test_monte_carlo_is_reproducible_batch_independent_and_widens_with_errors(env):
    ens = env["model"].ensemble
    df = env["frame"].iloc[1:301].reset_index(drop=True)
    opts = B.ScoreOptions(mc_samples=16, mc_seed=1)
    a = B.score_frame(ens, df, opts)
    b = B.score_frame(ens, df, opts)
    pd.testing.assert_frame_equal(a, b)
    halves = pd.concat([B.score_frame(ens, df.iloc[:100], opts), B.score_frame(ens, df.iloc[100:], opts)],
                       ignore_index=True)
    pd.testing.assert_frame_equal(halves, a, check_exact=True)
    other_seed = B.score_frame(ens, df, B.ScoreOptions(mc_samples=16, mc_seed=2))
    assert not np.allclose(other_seed["log_stellar_mass"], a["log_stellar_mass"])

    noisy = df.copy()
    for band in ens.feature_spec.bands:
        col = ens.feature_spec.error_prefix + band
        noisy[col] = noisy[col] * 4
    # same error features as `noisy` but no resampling spread: isolates the MC contribution
    w_mc = B.score_frame(ens, noisy, B.ScoreOptions(mc_samples=16, mc_seed=1))
    base = B.score_frame(ens, noisy, B.ScoreOptions())
    assert w_mc["log_stellar_mass_err"].mean() > base["log_stellar_mass_err"].mean()
    assert w_mc["p_star_err"].mean() > a["p_star_err"].mean()
    # (the 1-epoch test model's p(z) spans the whole z range, so z widths are not compared here)


def test_monte_carlo_outputs_are_sane(env):
    """Every draw's z_phot is >= 0; the intervals are ordered lo95 <= lo68 <= z <= hi68 <= hi95;
    spreads are >= 0 and probabilities in [0, 1]; the same seed gives the same bits, another seed
    other draws; an unscorable row stays null."""
    ens, spec = env["model"].ensemble, env["model"].ensemble.feature_spec
    df = env["frame"].iloc[:400].reset_index(drop=True)          # row 0: no detection-band magnitude
    ids = df["ID"].to_numpy(np.int64)
    # the draws themselves
    rep = pd.DataFrame(B.resample_photometry(df.iloc[1:101], spec, ids[1:101], 8, seed=3))
    assert len(rep) == 800
    per_draw = ens.predict(rep)
    scored = (per_draw["quality_flags"] & B.FLAG_NOT_SCORABLE) == 0
    assert (per_draw.loc[scored, ["z_phot", "z_phot_lo95", "z_phot_mode"]].to_numpy() >= 0).all()
    same = pd.DataFrame(B.resample_photometry(df.iloc[1:101], spec, ids[1:101], 8, seed=3))
    other = pd.DataFrame(B.resample_photometry(df.iloc[1:101], spec, ids[1:101], 8, seed=4))
    pd.testing.assert_frame_equal(rep, same, check_exact=True)
    band = spec.detection_band
    m0 = df[band].iloc[1:101].repeat(8).to_numpy(np.float64)
    moved = np.isfinite(m0) & (rep[spec.error_prefix + band].to_numpy(np.float64) > 0)
    assert moved.sum() > 700
    assert (rep[band].to_numpy()[moved] != m0[moved]).all()                  # redrawn ...
    assert (rep[band].to_numpy()[moved] != other[band].to_numpy()[moved]).all()   # ... per seed
    # the combined estimates
    opts = B.ScoreOptions(mc_samples=8, mc_seed=3)
    a = B.score_frame(ens, df, opts)
    ok = (a["quality_flags"] & B.FLAG_NOT_SCORABLE) == 0
    assert not ok[0] and ok[1:].all()
    assert a.loc[0, ["z_phot", "z_phot_lo95", "p_star", "p_star_err", "log_stellar_mass"]].isna().all()
    g = a[ok]
    z = g[["z_phot_lo95", "z_phot_lo68", "z_phot", "z_phot_hi68", "z_phot_hi95"]].to_numpy()
    assert np.isfinite(z).all() and (z >= 0).all() and (np.diff(z, axis=1) >= 0).all()
    assert (g["z_phot_err"] >= 0).all() and (g["z_phot_mode"] >= 0).all()
    assert g["p_star"].between(0, 1).all() and (g["p_star_err"] >= 0).all()
    assert (g["spectral_type_err"] >= 0).all() and (g["log_stellar_mass_err"] >= 0).all()
    pd.testing.assert_frame_equal(B.score_frame(ens, df, opts), a, check_exact=True)
    b = B.score_frame(ens, df, B.ScoreOptions(mc_samples=8, mc_seed=4))
    for c in ("z_phot", "p_star", "spectral_type"):     # (the 1-epoch model's lo68 is 0 everywhere)
        assert (b.loc[ok, c] != a.loc[ok, c]).any(), c


def test_mc_normal_is_pinned_to_the_bit():
    """The Monte Carlo draws are part of the output: any change of the counter-based generator
    (SplitMix64 + Box–Muller) changes every MC estimate. Values from the generator as released."""
    ids = np.array([0, 1, 81421100000, -5, 2**62], dtype=np.int64)
    z = B.mc_normal(ids, np.array([0, 3, 1, 7, 2], np.uint64), 2, 5)
    assert [float(v).hex() for v in z] == ["0x1.82f30096ea8afp-1", "0x1.1893e87ac6582p+1", "-0x1.02d31fea7eb02p-2",
                                           "-0x1.bad55cdc54606p-2", "-0x1.397b3a2d68157p-1"]


def test_estimates_do_not_depend_on_batching(env):
    """Bit-identical estimates whatever the batch sizes (1 row, 7 rows, uneven splits)."""
    ens = env["model"].ensemble
    df = env["frame"].reset_index(drop=True)
    whole = B.score_frame(ens, df)
    for sizes in ([1] * 5 + [7] * 3 + [len(df)], [333, 1, 866]):
        parts, start = [], 0
        for n in sizes:
            if start < len(df):
                parts.append(B.score_frame(ens, df.iloc[start:start + n]))
            start += n
        pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole, check_exact=True)


def test_batch_size_and_work_units_do_not_change_a_bit(env, tmp_path, monkeypatch):
    """Arrow batches of 7 rows, and work units of ~50 rows (row groups cut into slices, each
    slice a Spark task of its own), give the same bits as the defaults."""
    from galaxy_spark.estimate import tasks

    a, _ = score(env, tmp_path / "default")
    b, _ = score(env, tmp_path / "tiny_batches", batch_size=7)
    monkeypatch.setattr(tasks, "UNIT_ROWS", 50)
    c, _ = score(env, tmp_path / "tiny_units")
    x = read_scores(tmp_path / "default").drop(columns=["scored_at"])
    for other in ("tiny_batches", "tiny_units"):
        pd.testing.assert_frame_equal(x, read_scores(tmp_path / other).drop(columns=["scored_at"]), check_exact=True)
    assert len(list((tmp_path / "tiny_units").rglob("part-*.parquet"))) > len(list((tmp_path / "default").rglob("part-*.parquet")))


def test_work_units_cover_every_row_once(tmp_path):
    """plan_units: row groups packed, large ones sliced, the largest halved up to min_units; the
    units' rows add up to the footers' and no row range is taken twice."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from galaxy_spark.estimate.tasks import plan_units

    for f, n, rg in ((3, 10_000, 7_000), (5, 450, 100)):
        (tmp_path / f"Field={f}").mkdir()
        pq.write_table(pa.table({"ID": np.arange(n, dtype=np.int64)}), tmp_path / f"Field={f}" / "a.parquet",
                       row_group_size=rg)
    for unit_rows, min_units in ((1000, 1), (100_000, 1), (100_000, 9), (300, 4)):
        units, rows = plan_units(tmp_path, [3, 5], unit_rows=unit_rows, min_units=min_units)
        assert rows == {3: 10_000, 5: 450}
        assert len(units) >= min(min_units, 2)
        taken = {}
        for u in units:
            md = pq.ParquetFile(u.path).metadata
            for g in u.row_groups:
                n = md.row_group(g).num_rows
                a, b = u.row_slice or (0, n)
                taken.setdefault((u.field, g), []).append((a, b))
        for f in (3, 5):
            assert sum(u.rows for u in units if u.field == f) == rows[f]
        for spans in taken.values():
            spans.sort()
            assert all(b0 == a1 for (_, b0), (a1, _) in zip(spans, spans[1:]))   # contiguous, no overlap


def test_monte_carlo_redshifts_are_never_negative(env):
    """The slope correction is a polynomial and can extrapolate below z = 0; the one p(z) read-out
    clips there, in Monte Carlo mode too (it once did not)."""
    import copy

    from galaxy_spark.model.ensemble import Calibration

    ens = copy.deepcopy(env["model"].ensemble)
    ens.networks["redshift"].calibration = Calibration(1, [1.0, -0.5], [0.0, 1.0], [-0.5, 0.5])
    df = env["frame"].iloc[1:201].reset_index(drop=True)
    for opts in (B.ScoreOptions(), B.ScoreOptions(mc_samples=4, mc_seed=1)):
        out = B.score_frame(ens, df, opts)
        z = out[["z_phot", "z_phot_lo68", "z_phot_hi68", "z_phot_lo95", "z_phot_hi95", "z_phot_mode"]]
        assert (z.to_numpy() >= 0).all() and (z["z_phot_lo95"] == 0).any()


def test_mc_normal_is_standard_and_keyed_by_id():
    ids = np.arange(20000, dtype=np.int64) + 81421100000
    z = B.mc_normal(ids, np.zeros(len(ids), np.uint64), 3, 0)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    z2 = B.mc_normal(ids[::-1], np.zeros(len(ids), np.uint64), 3, 0)
    np.testing.assert_array_equal(z, z2[::-1])


def test_coverage_report(env):
    cat = env["frame"]
    sc = B.score_frame(env["model"].ensemble, cat)
    rep = C.coverage_report(sc, cat, load_survey())
    assert rep["n_objects"] > 0 and 0 <= rep["zb_1"]["coverage68"] <= rep["zb_1"]["coverage95"] <= 1
    assert "z_true" in rep


def test_coverage_on_spark_filters_the_test_split_before_collecting(env, tmp_path, monkeypatch):
    """The Spark version gives the pandas version's numbers, and only test-split rows reach the
    driver (it once collected every row)."""
    score(env, tmp_path / "scores")
    seen = []
    DataFrame = type(env["spark"].range(1))     # the concrete (classic) DataFrame class
    real = DataFrame.toPandas

    def spy(self):
        out = real(self)
        seen.append(out)
        return out

    monkeypatch.setattr(DataFrame, "toPandas", spy)
    rep = C.coverage_report_spark(env["spark"], env["catalog"], tmp_path / "scores", [2, 3, 4, 5, 6, 7, 8],
                                  load_survey())
    monkeypatch.undo()
    assert seen and all(in_test_split(f["ID"].to_numpy(np.int64)).all() for f in seen)
    expect = C.coverage_report(read_scores(tmp_path / "scores"), env["frame"], load_survey())
    assert rep["n_objects"] == expect["n_objects"] and rep["zb_1"] == expect["zb_1"]


# ---- bad input: clear error, exit 2, before any work ------------------------------------------
def _score_main():
    spec = importlib.util.spec_from_file_location("score_job", REPO / "jobs" / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.parametrize("case", ["alias", "uri", "missing_column", "survey", "corrupt_manifest", "bands", "field"])
def test_bad_input_is_a_clear_error(env, tmp_path, capsys, case):
    cat, model = env["catalog"], "models:/galaxy-ensemble@champion"
    extra, expect = [], ""
    if case == "alias":
        model, expect = "models:/galaxy-ensemble@nope", "nope"
    elif case == "uri":
        model, expect = "models:/no-such-model/1", "no-such-model"
    elif case == "missing_column":
        cat = tmp_path / "cat"
        write_partitioned(env["frame"].drop(columns=["dF365W"]).head(50), cat)
        expect = "dF365W"
    elif case == "survey":
        cat = tmp_path / "cat"
        write_partitioned(env["frame"].head(50), cat)
        (cat / "_manifest.json").write_text(json.dumps({"survey": "jpas", "fields": {}}))
        expect = "'jpas'"
    elif case == "corrupt_manifest":        # unreadable: an error, never a skipped survey check
        cat = tmp_path / "cat"
        write_partitioned(env["frame"].head(50), cat)
        (cat / "_manifest.json").write_text('{"survey": "jpas", "fields": {')
        expect = f"catalogue manifest {cat / '_manifest.json'} is unreadable"
    elif case == "bands":
        cat = tmp_path / "cat"
        write_partitioned(env["frame"].drop(columns=["F365W", "F396W"]).head(50), cat)
        expect = "another survey"
    elif case == "field":
        extra, expect = ["--fields", "2,99"], "Field 99"
    out = tmp_path / "scores"
    rc = _score_main()(["--catalog", str(cat), "--model", model, "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and expect in err and "Traceback" not in err
    assert not out.exists()


def test_cli_exit_code_through_a_real_process(env, tmp_path):
    p = subprocess.run([sys.executable, str(REPO / "jobs/score.py"), "--catalog", str(env["catalog"]),
                        "--model", "models:/galaxy-ensemble@missing", "--out", str(tmp_path / "s")],
                       cwd=env["dir"], env=_env(env["dir"]), capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "error: model 'models:/galaxy-ensemble@missing'" in p.stderr


def test_unreadable_catalogue_file_is_a_clear_error(tmp_path):
    """A Field file that is not Parquet: an InputError naming the file, before any Spark job is run."""
    from galaxy_spark.errors import InputError
    from galaxy_spark.estimate.tasks import plan_units

    (tmp_path / "Field=2").mkdir()
    (tmp_path / "Field=2" / "part-0.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"Field=2/part-0\.parquet is not readable Parquet"):
        plan_units(tmp_path, [2])
