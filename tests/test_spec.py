"""Tests of the spectroscopic sample (galaxy_spark/catalog/spec.py, the survey's spectroscopy: section, and
the mock job writing X.specz.csv next to its catalogue)."""
from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from galaxy_spark.catalog import spec
from galaxy_spark.errors import InputError
from galaxy_spark.mock import writer
from galaxy_spark.survey import SurveyConfigError, parse_survey, survey_file

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "jobs" / "mock.py"
N_TABLE = 10000     # in-process mock for the statistics (expected ~160 spectra)
N_JOB = 1000        # the job's mock (its runtime is mostly the fixed model setup)
SEED = 11


@pytest.fixture(scope="module", autouse=True)
def _job_run(tmp_path_factory):
    """Start the mock job (writing its sample) at once; the in-process tests run while it works."""
    out = tmp_path_factory.mktemp("specmock") / "a.csv"
    cmd = [sys.executable, str(JOB), "--quiet", "--objects", str(N_JOB), "--seed", str(SEED), "--format", "csv",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield out, proc
    if proc.poll() is None:       # a failure left it running
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def jobs(_job_run, table, tmp_path_factory):
    """(catalogue + sample from the job run, the same catalogue with --no-spec, the run's stderr).

    The --no-spec run calls the job's main() in this process: same code, and the mock's model set-up
    (most of a small run's time) is already cached here by the `table` fixture."""
    out, proc = _job_run
    err = proc.communicate(timeout=300)[1]
    assert proc.returncode == 0, err
    ms = importlib.util.spec_from_file_location("mock_job", JOB)
    job = importlib.util.module_from_spec(ms)
    ms.loader.exec_module(job)
    ref = tmp_path_factory.mktemp("specmock_nospec") / "b.csv"
    assert job.main(["--quiet", "--objects", str(N_JOB), "--seed", str(SEED), "--format", "csv", "--out", str(ref),
                     "--no-spec"]) == 0
    return out, ref, err


@pytest.fixture(scope="module")
def table(survey):
    from galaxy_spark.mock.core import generate_table

    return generate_table(survey, N_TABLE, 3)


@pytest.fixture(scope="module")
def sample(table, survey):
    return spec.draw_spec_sample(table, survey, np.random.default_rng(1))


def _lookup(table, survey, ids, col):
    pos = pd.Index(table[survey.id_column]).get_indexer(ids)
    assert (pos >= 0).all()
    return np.asarray(table[col])[pos]


# ---- the mock's draw -----------------------------------------------------------------------------
def test_size_scales_with_the_catalogue(table, sample, survey):
    cfg = survey.spec_config()
    expected = cfg.target_size * N_TABLE / cfg.reference_objects
    p = spec.spec_probability(table[survey.detection_band], table["Field"], table["is_star"], survey)
    assert abs(p.sum() / expected - 1) < 0.15, (p.sum(), expected)
    assert abs(len(sample) / expected - 1) < 0.3, (len(sample), expected)
    # half the objects, about half the spectra (the selection is per object)
    half = {k: v[: N_TABLE // 2] for k, v in table.items()}
    p_half = spec.spec_probability(half[survey.detection_band], half["Field"], half["is_star"], survey)
    assert abs(p_half.sum() / p.sum() - 0.5) < 0.1
    assert list(sample.columns) == spec.spec_columns(survey)
    assert sample[survey.id_column].dtype == np.int64 and sample[survey.id_column].is_unique
    assert sample[survey.id_column].is_monotonic_increasing


def test_magnitude_dependence(table, sample, survey):
    band = survey.detection_band
    mag = _lookup(table, survey, sample[survey.id_column], band)
    assert (mag < 22.5).mean() > 0.65             # most spectra are bright
    assert (mag > 24).mean() < 0.03               # ~none beyond 24
    p = spec.spec_probability(np.array([18.0, 21.0, 22.5, 23.5, 24.5, 99.0, -99.0]), np.full(7, 4),
                              np.zeros(7), survey)
    assert np.all(np.diff(p[:5]) < 0) and p[0] > 0.3 and p[4] < 0.01
    assert p[5] == 0 and p[6] == 0                 # sentinels: not detected / not observed
    # quality: mostly secure when bright, more insecure when faint
    q = sample[spec.QUALITY].to_numpy()
    assert spec.secure(q[mag < 22]).mean() > 0.7
    assert (q[mag > 22.5] <= 2).mean() > (q[mag < 21] <= 2).mean()
    qp = spec.quality_probabilities(np.array([18.0, 25.0]), survey)
    assert np.allclose(qp.sum(axis=1), 1) and qp[0, 3] > qp[1, 3] and qp[0, 0] < qp[1, 0]


def test_deep_fields_concentrate_the_spectra(table, sample, survey):
    deep = list(survey.spec_config().deep_fields)
    assert sorted(deep) == [4, 5, 6]
    in_deep = np.isin(table["Field"], deep)
    s_deep = np.isin(_lookup(table, survey, sample[survey.id_column], "Field"), deep)
    rate_deep = s_deep.sum() / in_deep.sum()
    rate_other = (~s_deep).sum() / (~in_deep).sum()
    assert rate_deep > 10 * rate_other and rate_other > 0     # the shallow survey covers every field
    assert s_deep.mean() > 0.8


def test_redshifts_stars_and_wrong_fraction(table, sample, survey):
    zt = _lookup(table, survey, sample[survey.id_column], "z_true")
    star = _lookup(table, survey, sample[survey.id_column], "is_star").astype(bool)
    assert ((sample[spec.SPEC_CLASS] == "star") == star).all()
    assert np.all(sample[spec.Z_SPEC][star] < 0.003) and np.all(sample[spec.Z_SPEC] >= 0)
    wrong = np.abs(sample[spec.Z_SPEC] - zt) / (1 + zt) > 0.01
    assert wrong.mean() < 0.05
    # wrong redshifts concentrate at low quality: draw a big sample of faint galaxies
    n = 40000
    t = {survey.id_column: np.arange(n, dtype=np.int64), "Field": np.full(n, 4),
         survey.detection_band: np.full(n, 21.0), "z_true": np.full(n, 0.8), "is_star": np.zeros(n, int)}
    s = spec.draw_spec_sample(t, survey, np.random.default_rng(0))
    bad = np.abs(s[spec.Z_SPEC] - 0.8) / 1.8 > 0.01
    rate = bad.groupby(s[spec.QUALITY]).mean()
    assert rate[1] > rate[2] > rate[4] and 0.003 < bad.mean() < 0.03
    assert set(s[spec.SPEC_CLASS]) == {"galaxy"} and set(s[spec.QUALITY]) == {1, 2, 3, 4}


def test_draw_deterministic(table, survey):
    a = spec.draw_spec_sample(table, survey, np.random.default_rng(5))
    b = spec.draw_spec_sample(table, survey, np.random.default_rng(5))
    c = spec.draw_spec_sample(table, survey, np.random.default_rng(6))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


# ---- the job -------------------------------------------------------------------------------------
def test_job_writes_sample_without_touching_the_catalogue(jobs, survey):
    from galaxy_spark.mock.core import generate_table

    a, b, stderr = jobs
    assert a.read_bytes() == b.read_bytes()            # the draw uses its own RNG stream
    path = a.with_name("a.specz.csv")
    assert not b.with_name("b.specz.csv").exists()
    got = pd.read_csv(path)
    assert f"wrote {len(got)} spectroscopic redshifts to {path}" in stderr
    assert list(got.columns) == spec.spec_columns(survey)
    assert got[survey.id_column].is_monotonic_increasing
    cat = pd.read_csv(a, usecols=[survey.id_column])
    assert got[survey.id_column].isin(cat[survey.id_column]).all()
    # same seed -> same sample: the job's file is the documented draw of the same mock
    table = generate_table(survey, N_JOB, SEED)
    expected = spec.draw_spec_sample(table, survey, np.random.default_rng(np.random.SeedSequence([SEED, 0x5BEC])))
    assert got[survey.id_column].tolist() == expected[survey.id_column].tolist()
    assert got[spec.QUALITY].tolist() == expected[spec.QUALITY].tolist()
    assert np.allclose(got[spec.Z_SPEC], expected[spec.Z_SPEC], atol=1e-5)
    # and the reader takes the mock's file as it is
    frame, report = spec.read_spec(path, survey)
    assert report["rows_valid"] == len(got) and report["rejected"] == {}


def test_spec_paths(tmp_path):
    assert writer.spec_path("data/raw/x.csv", "csv") == Path("data/raw/x.specz.csv")
    assert writer.spec_path("data/raw/mock_ascii", "ascii") == Path("data/raw/mock_ascii.specz.csv")
    assert writer.spec_path("data/raw/mock_ascii/", "ascii") == Path("data/raw/mock_ascii.specz.csv")
    (tmp_path / "x.specz.csv").mkdir()
    with pytest.raises(InputError, match="directory"):
        writer.check_spec_path(str(tmp_path / "x.csv"), "csv")


# ---- the survey's spectroscopy: section ---------------------------------------------------------
def test_config_validation_names_the_key():
    raw = yaml.safe_load(survey_file("alhambra").read_text())
    cases = [(("deep_fields", 9), {"survey": "X", "fraction": 0.5, "mag_50": 22, "mag_width": 0.2},
              "spectroscopy.deep_fields.9"),
             (("deep_fields", 4, "fraction"), 1.5, "spectroscopy.deep_fields.4.fraction"),
             (("shallow", "mag_width"), None, "spectroscopy.shallow.mag_width"),
             (("quality", "fractions", 4), [0.9, 0.2], "spectroscopy.quality.fractions"),
             (("quality", "wrong_rate"), {1: 0.1, 2: 0.1}, "spectroscopy.quality.wrong_rate"),
             (("wrong_z", "uniform_range"), [2, 1], "spectroscopy.wrong_z.uniform_range")]
    for keys, value, where in cases:
        r = copy.deepcopy(raw)
        d = r["spectroscopy"]
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
        with pytest.raises(SurveyConfigError, match=f"x.yaml: {where.replace('.', '[.]')}"):
            parse_survey(r, "x.yaml")
    r = copy.deepcopy(raw)
    del r["spectroscopy"]
    with pytest.raises(SurveyConfigError, match="x.yaml: spectroscopy: missing section"):
        parse_survey(r, "x.yaml").spec_config()


# ---- reading users' files ------------------------------------------------------------------------
def test_read_csv_bom_case_insensitive_and_defaults(tmp_path, survey):
    p = tmp_path / "s.csv"
    p.write_bytes("\ufeffid,Z_SPEC\n81440100003,0.51\n81440100001,1.2\n".encode("utf-8"))
    frame, report = spec.read_spec(p, survey)
    assert report == {"path": str(p), "rows_read": 2, "rows_valid": 2, "rejected": {}}
    assert list(frame.columns) == spec.spec_columns(survey)
    assert frame[survey.id_column].tolist() == [81440100001, 81440100003]
    assert frame[survey.id_column].dtype == np.int64
    assert frame[spec.SPEC_CLASS].tolist() == ["galaxy", "galaxy"]
    assert frame[spec.QUALITY].tolist() == [4, 4]


def test_read_bad_rows_counted_per_reason(tmp_path, survey):
    rows = ["ID,z_spec,Spec_Class,z_spec_quality",
            "1,0.5,galaxy,4",          # ok
            "2,0.0001,STAR,3",         # ok (case-insensitive class)
            "3,0.7,,",                 # ok: empty cells take the defaults
            "x7,0.5,galaxy,4",         # id_unparsable
            "4,0.3,galaxy,4", "4,0.4,galaxy,3",   # duplicate_id (both copies)
            "5,abc,galaxy,4",          # z_spec_not_numeric
            "6,,galaxy,4",             # z_spec_not_numeric (empty)
            "7,inf,galaxy,4",          # z_spec_not_finite
            "8,nan,galaxy,4",          # z_spec_not_finite
            "9,-0.2,galaxy,4",         # z_spec_negative
            "10,0.5,qso,4",            # unknown_spec_class
            "11,0.5,galaxy,5",         # quality_out_of_range
            "12,0.5,galaxy,2.5",       # quality_out_of_range
            "13,0.5,galaxy,good"]      # quality_out_of_range
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(rows) + "\n")
    frame, report = spec.read_spec(p, survey)
    assert frame[survey.id_column].tolist() == [1, 2, 3]
    assert frame[spec.SPEC_CLASS].tolist() == ["galaxy", "star", "galaxy"]
    assert frame[spec.QUALITY].tolist() == [4, 3, 4]
    assert report["rejected"] == {"id_unparsable": 1, "duplicate_id": 2, "z_spec_not_numeric": 2,
                                  "z_spec_not_finite": 2, "z_spec_negative": 1, "unknown_spec_class": 1,
                                  "quality_out_of_range": 3}
    assert report["rows_read"] == 15 and report["rows_valid"] == 3
    assert report["rows_read"] == report["rows_valid"] + sum(report["rejected"].values())


def test_read_parquet_file_and_directory(tmp_path, survey):
    df = pd.DataFrame({"Id": np.array([81440100001, 81440100002, 81440100002, 81440100005], np.int64),
                       "Z_Spec": [0.3, 0.4, 0.41, np.nan], "SPEC_CLASS": ["galaxy", "galaxy", "star", "galaxy"],
                       "z_spec_Quality": np.array([3, 2, 4, 4], np.int32)})
    f = tmp_path / "s.parquet"
    df.to_parquet(f, index=False)
    d = tmp_path / "sdir"
    d.mkdir()
    df.iloc[:2].to_parquet(d / "part-0.parquet", index=False)
    df.iloc[2:].to_parquet(d / "part-1.parquet", index=False)
    for path in (f, d):
        frame, report = spec.read_spec(path, survey)
        assert frame[survey.id_column].tolist() == [81440100001]
        assert frame[spec.QUALITY].tolist() == [3] and frame[spec.Z_SPEC].tolist() == [0.3]
        assert report["rejected"] == {"duplicate_id": 2, "z_spec_not_finite": 1}


def test_read_errors(tmp_path, survey):
    with pytest.raises(InputError, match="not found: .*nope.csv"):
        spec.read_spec(tmp_path / "nope.csv", survey)
    p = tmp_path / "s.csv"
    p.write_text("ID,redshift\n1,0.5\n")
    with pytest.raises(InputError, match="missing required column 'z_spec'"):
        spec.read_spec(p, survey)
    p.write_text("z_spec\n0.5\n")
    with pytest.raises(InputError, match="missing required column 'ID'"):
        spec.read_spec(p, survey)
    p.write_text("")
    with pytest.raises(InputError, match="empty"):
        spec.read_spec(p, survey)
    q = tmp_path / "s.txt"
    q.write_text("ID,z_spec\n1,0.5\n")
    with pytest.raises(InputError, match="unknown format"):
        spec.read_spec(q, survey)


# ---- the join ------------------------------------------------------------------------------------
def test_join_aligns_and_counts_unknown_ids(survey):
    s = pd.DataFrame({survey.id_column: np.array([10, 30, 99, 98], np.int64), spec.Z_SPEC: [0.1, 0.3, 0.9, 0.8],
                      spec.SPEC_CLASS: ["galaxy", "star", "galaxy", "galaxy"], spec.QUALITY: [4, 2, 3, 1]})
    ids = np.array([30, 20, 10, 40], np.int64)
    arrays, report = spec.join_spec(ids, s)
    assert np.allclose(arrays[spec.Z_SPEC], [0.3, np.nan, 0.1, np.nan], equal_nan=True)
    assert arrays[spec.SPEC_CLASS].tolist() == ["star", None, "galaxy", None]
    assert arrays[spec.QUALITY].tolist() == [2, 0, 4, 0]
    assert spec.secure(arrays[spec.QUALITY]).tolist() == [False, False, True, False]
    assert report["matched"] == 2 and report["not_in_catalogue"] == 2
    assert sorted(report["not_in_catalogue_examples"]) == [98, 99]
    with pytest.raises(InputError, match="duplicate"):
        spec.join_spec(ids, pd.concat([s, s]))


def test_join_is_vectorised_at_full_scale(survey):
    import time

    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(10 ** 11, 446_343, replace=False)).astype(np.int64)
    pick = rng.choice(len(ids), 7000, replace=False)
    s = pd.DataFrame({survey.id_column: np.r_[ids[pick], [-1, -2]], spec.Z_SPEC: rng.random(7002),
                      spec.SPEC_CLASS: "galaxy", spec.QUALITY: 4})
    t0 = time.perf_counter()
    arrays, report = spec.join_spec(ids, s)
    assert time.perf_counter() - t0 < 5
    assert report["matched"] == 7000 and report["not_in_catalogue"] == 2
    assert np.isfinite(arrays[spec.Z_SPEC]).sum() == 7000


def test_noise_depth_is_optional_and_checked():
    raw = yaml.safe_load(survey_file("alhambra").read_text())
    r = copy.deepcopy(raw)
    r["bands"][0]["noise_depth_5sigma"] = -1
    with pytest.raises(SurveyConfigError, match=r"x.yaml: bands\[0\].noise_depth_5sigma: expected a positive"):
        parse_survey(r, "x.yaml")
    del r["bands"][0]["noise_depth_5sigma"]
    assert parse_survey(r, "x.yaml").bands[0].noise_depth_5sigma is None
