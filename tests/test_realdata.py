"""Real-data check on the 817 shared ALHAMBRA rows (VizieR CSV): ingest → score with the session's
tiny model (trained on a synthetic catalogue) → compare with the survey's zb_1. Mechanics and
finiteness only: a 1-epoch model on synthetic data says nothing about quality."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent


def run(cmd, cwd, check=True):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd}/mlflow.db", "PYTHONPATH": str(REPO),
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def test_realdata_check_on_shared_rows(tmp_path, real_rows_path, model_store, spark):
    """What jobs/realdata_check.py does (check, report, console summary), in this process on the
    shared Spark session; the job itself runs as a process in tests/test_finetune.py (with
    --finetune-folds) and below (its input errors)."""
    from galaxy_spark.studies.realdata import RealDataOptions, run_realdata_check
    from galaxy_spark.studies.realdata_report import console_lines, write_realdata_report
    from synthetic import use_tracking_uri

    model_store(tmp_path)           # the session's tiny model, in a private copy of its store
    out = tmp_path / "reports" / "realdata"
    with use_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db"):
        check = run_realdata_check(RealDataOptions(input=str(real_rows_path), out=str(out)), spark)
    report = write_realdata_report(check, out)
    assert f"report: {out / 'report.html'}" in console_lines(check, report)
    m = json.loads((out / "metrics.json").read_text())
    assert m["rows"]["read"] == 817 and m["rows"]["ingested"] + m["rows"]["quarantined"] == 817
    assert m["model"] == "models:/galaxy-ensemble@champion" and m["model_run_id"]
    primary = m["samples"][m["primary_sample"]]
    assert m["primary_sample"].startswith("galaxies, Odds_1 > 0.9")
    gal = m["samples"]["all galaxies"]
    assert 0 < primary["n"] < gal["n"] <= 817
    for r in (primary, gal):
        for k in ("sigma_nmad", "bias", "outlier_frac", "outlier_frac_rail", "coverage68", "coverage95"):
            assert r[k] is not None and math.isfinite(r[k]), k
    assert (out / "realdata_scatter.png").stat().st_size > 1000
    # the SED network on real rows: colour percentiles and its M_B against the survey's own
    sed = m["sed"]["all galaxies"]
    assert sed["n"] == gal["n"] and sed["rest_u_minus_v_p16"] <= sed["rest_u_minus_v_p50"] <= sed["rest_u_minus_v_p84"]
    assert math.isfinite(sed["abs_bessell_B_minus_M_Abs_1_nmad"])
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html
    # no leftovers: the temporary ingest is removed, the report dir was committed whole
    assert not list(out.parent.glob("realdata.staging-*"))


def test_realdata_check_needs_an_input(tmp_path):
    p = run([sys.executable, str(REPO / "jobs/realdata_check.py"), "--out", str(tmp_path / "r")], tmp_path, check=False)
    assert p.returncode == 2 and "error: no --input given" in p.stderr and "Traceback" not in p.stderr
    p = run([sys.executable, str(REPO / "jobs/realdata_check.py"), "--input", str(tmp_path / "missing.csv")], tmp_path,
            check=False)
    assert p.returncode == 2 and "error: input not found" in p.stderr
