"""Evaluation end to end: the session's tiny model (a private copy of its SQLite MLflow store),
scored with jobs/score.py, evaluated with jobs/evaluate.py → report.html (self-contained),
metrics.json, PNGs, logged to the model's MLflow run. Plus the clear errors, and the pure helpers on known inputs."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_spark.survey import load_survey
from synthetic import canonical_frame, use_tracking_uri, write_partitioned

REPO = Path(__file__).resolve().parent.parent


def run(cmd, cwd, check=True, timeout=600):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "PYTHONPATH": str(REPO),
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, model_store, spark):
    """The session's tiny model (a private copy of its store: the evaluation is logged to the
    model's run) → score a 3,000-row catalogue (the scoring job's code, in this process on the
    shared Spark session; tests/test_scoring.py and test_cluster.py run jobs/score.py itself) →
    jobs/evaluate.py once; the tests below inspect the result."""
    from galaxy_spark.estimate.job import JobOptions, run_scoring

    d = model_store(tmp_path_factory.mktemp("evaluate"))
    frame = canonical_frame(load_survey(), n=3000, seed=3)
    write_partitioned(frame, d / "catalog")
    # a spectroscopic sample (secure z = truth) with 2 IDs that are not in the catalogue
    spec = frame.loc[frame["is_star"] == 0, ["ID", "z_true"]].head(900).rename(columns={"z_true": "z_spec"})
    spec = pd.concat([spec, pd.DataFrame({"ID": [11, 12], "z_spec": [0.5, 0.6]})])
    spec.to_csv(d / "specz.csv", index=False)
    with use_tracking_uri(f"sqlite:///{d}/mlflow.db"):
        res = run_scoring(JobOptions(catalog=str(d / "catalog"), out=str(d / "scores"),
                                     model="models:/galaxy-ensemble@champion"), spark=spark, echo=lambda s: None)
    assert res["rows_in"] == res["rows_out"] == len(frame)
    p = run([sys.executable, str(REPO / "jobs/evaluate.py"), "--scores", str(d / "scores"), "--catalog",
             str(d / "catalog"), "--out", str(d / "reports" / "tiny"), "--bpz-max-objects", "400",
             "--spec", str(d / "specz.csv")], d)
    return d, p


def test_report_is_self_contained_with_all_sections(evaluated):
    d, p = evaluated
    out = d / "reports" / "tiny"
    assert f"report: {out / 'report.html'}" in p.stdout
    assert "redshift_sigma_nmad" in p.stdout and "ratio" in p.stdout
    html = (out / "report.html").read_text()
    from galaxy_spark.report.evaluation import SECTIONS
    for s in SECTIONS:
        assert f"<h2>{s.replace('&', '&amp;')}</h2>" in html, s
    imgs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(imgs) >= 9 and all(s.startswith("data:image/png;base64,") for s in imgs)
    # nothing fetched from elsewhere: no external src/href/url(), no scripts or stylesheets
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "url(" not in html and "<script" not in html and "<link" not in html
    assert "http://" not in html and "https://" not in html
    for png in ("pred_vs_true", "residuals_vs_mag", "residuals_vs_z", "nz", "pit", "star_galaxy",
                "binned_vs_mag", "binned_vs_z", "loss_curves"):
        assert (out / f"{png}.png").stat().st_size > 1000
    # the thesis' published numbers are in the table
    for v in ("0.202", "0.376", "0.9833", "0.9832", "0.324", "0.355", "0.64", "0.625"):
        assert v in html


def test_three_comparisons_on_the_same_galaxies(evaluated):
    d, p = evaluated
    m = json.loads((d / "reports" / "tiny" / "metrics.json").read_text())
    comp = pd.DataFrame(m["comparisons"])
    assert set(comp["labels"]) == {"catalogue", "spec", "truth"}
    spec_all = comp[(comp["labels"] == "spec") & (comp["mag"] == "all")].iloc[0]
    # every test-split spectroscopic galaxy is in the BPZ comparison (not only the BPZ subsample)
    assert spec_all["n"] == m["data"]["spec"]["matched_test_split"]
    assert m["data"]["spec"]["not_in_catalogue"] == 2 and m["data"]["spec"]["matched_catalogue"] == 900
    assert np.isfinite(spec_all["network_sigma_nmad"]) and np.isfinite(spec_all["bpz_sigma_nmad"])
    assert "spec" in m["network"] and "same galaxies, network vs BPZ" in p.stdout


def test_metrics_json_has_expected_keys_and_only_test_objects(evaluated):
    d, _ = evaluated
    m = json.loads((d / "reports" / "tiny" / "metrics.json").read_text())
    assert set(m) >= {"data", "network", "baseline", "thesis", "headline"}
    assert set(m["network"]) == {"catalogue", "spec", "truth"}
    for src in ("catalogue", "truth"):
        net = m["network"][src]
        for k in ("bias", "sigma_nmad", "outlier_frac", "outlier_frac_rail", "crps", "coverage68", "coverage95",
                  "pit_ks"):
            assert k in net["redshift"]["overall"], k
        assert len(net["redshift"]["by_mag"]) > 3 and len(net["redshift"]["by_z"]) > 3
        assert sum(net["redshift"]["pit"]["counts"]) == net["redshift"]["pit"]["n"] > 0
        for k in ("purity", "completeness", "roc_auc", "balanced_accuracy"):
            assert k in net["stellarity"]["overall"]
        for name in ("stellar_mass", "spectral_type"):
            assert {"bias", "nmad", "r2"} <= set(net[name]["overall"])
        assert {"redshift_r2", "stellarity_accuracy", "stellar_mass_r2", "spectral_type_r2"} <= set(
            net["thesis_metrics"])
    # held-out test split only: every evaluated ID hashes below 0.2
    from galaxy_spark.features import id_hash_unit
    cat = pd.read_parquet(d / "catalog")
    test_ids = cat["ID"][id_hash_unit(cat["ID"].to_numpy()) < 0.2]
    assert m["data"]["n_test"] == len(test_ids) and m["data"]["n_scores"] == len(cat)
    base = m["baseline"]
    # the cap applies to the hash subsample; every spectroscopic test object is added to it
    assert 0 < base["n"] <= 400 + m["data"]["spec"]["matched_test_split"] and base["bpz"]["timing"]["objects_per_s"] > 0
    assert base["network"]["timing"]["objects_per_s"] > 0 and base["throughput_ratio"] > 0
    assert np.isfinite(base["bpz"]["truth"]["redshift"]["overall"]["sigma_nmad"])
    tab = {r["network"]: r for r in m["thesis"]["table"]}
    assert tab["redshift"]["thesis_validation"] == 0.376 and "default_validation" in tab["redshift"]
    assert tab["stellarity"]["thesis_train"] == 0.9833


def test_logged_to_the_model_run(evaluated):
    from mlflow import MlflowClient

    d, _ = evaluated
    m = json.loads((d / "reports" / "tiny" / "metrics.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{d}/mlflow.db")
    run_id = m["data"]["model_run_id"]
    r = client.get_run(run_id)
    assert "mlflow.parentRunId" not in r.data.tags and r.data.params["preset"] == "default"
    assert "eval_network_truth_redshift_sigma_nmad" in r.data.metrics
    assert "eval_throughput_ratio" in r.data.metrics
    assert r.data.tags["evaluation_report"] == "evaluation/tiny/report.html"
    arts = {a.path for a in client.list_artifacts(run_id, "evaluation/tiny")}
    assert {"evaluation/tiny/report.html", "evaluation/tiny/metrics.json", "evaluation/tiny/pit.png"} <= arts


def test_clear_errors(evaluated, tmp_path, spark, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from galaxy_spark.errors import InputError
    from galaxy_spark.evaluate.data import read_test_join

    d, _ = evaluated
    # the job's main() in this process (its checks run before Spark or MLflow are touched)
    spec_ = importlib.util.spec_from_file_location("evaluate_job", REPO / "jobs" / "evaluate.py")
    job = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(job)
    rc = job.main(["--scores", str(tmp_path / "nope"), "--catalog", str(d / "catalog"), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "error: scores not found" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
    s = pd.read_parquet(d / "scores").drop(columns=["scored_at"])
    s["Field"] = s["Field"].astype(int)
    other = s.copy()
    other["ID"] = other["ID"] + 7_000_000_000          # scores of another catalogue
    pq.write_to_dataset(pa.Table.from_pandas(other, preserve_index=False), str(tmp_path / "other"), ["Field"])
    mixed = s.copy()
    mixed.loc[mixed.index[::2], "model_run_id"] = "0" * 32   # two models in one scores dir
    pq.write_to_dataset(pa.Table.from_pandas(mixed, preserve_index=False), str(tmp_path / "mixed"), ["Field"])
    survey = load_survey()
    with pytest.raises(InputError, match="no ID in common"):
        read_test_join(spark, str(tmp_path / "other"), str(d / "catalog"), survey)
    with pytest.raises(InputError, match="mix 2 models.*--model-run-id"):
        read_test_join(spark, str(tmp_path / "mixed"), str(d / "catalog"), survey)
    with pytest.raises(InputError, match="not " + "f" * 32):
        read_test_join(spark, str(d / "scores"), str(d / "catalog"), survey, "f" * 32)


def test_crps_from_quantiles_matches_gaussian():
    from scipy.stats import norm

    from galaxy_spark.evaluate.data import QUANTILE_LEVELS
    from galaxy_spark.metrics import crps_from_quantiles

    mu, sig, y = 1.0, 0.1, np.array([1.0, 1.05, 1.3])
    q = np.tile(norm.ppf(QUANTILE_LEVELS, mu, sig), (3, 1))
    z = (y - mu) / sig
    exact = sig * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))
    approx = crps_from_quantiles(q, QUANTILE_LEVELS, y)
    assert np.allclose(approx, exact, rtol=0.1, atol=0.004)
    assert np.isnan(crps_from_quantiles(q[:1], QUANTILE_LEVELS, [np.nan])[0])


def test_roc_curve_and_subsample_are_deterministic():
    from galaxy_spark.evaluate.baseline import bpz_subsample
    from galaxy_spark.metrics import roc_auc, roc_curve

    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.3).astype(float)
    s = y * 0.5 + rng.random(500)
    fpr, tpr = roc_curve(y, s)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert abs(np.trapezoid(tpr, fpr) - roc_auc(y, s)) < 1e-9
    ids = np.arange(81421100001, 81421100001 + 1000)
    a, b = bpz_subsample(ids, 100), bpz_subsample(ids[::-1], 100)[::-1]
    assert a.sum() == 100 and np.array_equal(a, b)
