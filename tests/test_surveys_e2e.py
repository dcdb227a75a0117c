"""Another survey from its survey file alone, end to end and in-process on the session's Spark:
mock → ingest → train (1 epoch) → score → evaluate for J-PLUS (12 bands) and J-PAS (60 bands), and
the band-count study's report on a few thousand galaxies."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from galaxy_spark.survey import load_survey

N_OBJECTS = 2500


@pytest.mark.parametrize("name", ["jplus", "jpas"])
def test_survey_end_to_end(name, spark, tmp_path):
    from galaxy_spark.catalog.ingest import run_ingest
    from galaxy_spark.commands.mock import main as mock_main
    from galaxy_spark.estimate.job import JobOptions, run_scoring
    from galaxy_spark.evaluate.job import EvalOptions, run_evaluation
    from galaxy_spark.report.evaluation import write_report
    from galaxy_spark.train.driver import TrainOptions, train

    survey = load_survey(name)
    raw, cat, scores = tmp_path / f"{name}.csv", tmp_path / "catalog", tmp_path / "scores"
    assert mock_main(["--survey", name, "--objects", str(N_OBJECTS), "--seed", "5", "--out", str(raw), "--quiet"]) == 0
    head = pd.read_csv(raw, nrows=3)
    assert [c for c in head.columns if c in survey.band_names] == survey.band_names
    spec = tmp_path / f"{name}.specz.csv"
    m = run_ingest(str(raw), cat, tmp_path / "quarantine", survey=name, spark=spark)
    assert m["rows"]["read"] == N_OBJECTS == m["rows"]["written"] + m["rows"]["quarantined"]
    train(TrainOptions(catalog=str(cat), survey=name, max_epochs=1, register=f"e2e-{name}",
                             experiment=f"e2e-{name}", spec=str(spec)), spark)
    run_scoring(JobOptions(catalog=str(cat), out=str(scores), model=f"models:/e2e-{name}@champion", survey=name),
                spark)
    out = spark.read.parquet(str(scores)).toPandas()
    assert len(out) == m["rows"]["written"] and out["z_phot"].notna().mean() > 0.95
    ev = run_evaluation(EvalOptions(scores=str(scores), catalog=str(cat), out=str(tmp_path / "report"), survey=name,
                                    spec=str(spec), bpz_max_objects=300, mlflow=False,
                                    model=f"models:/e2e-{name}@champion"), spark)
    assert ev.metrics["data"]["survey"] == name and ev.metrics["data"]["detection_band"] == survey.detection_band
    html = write_report(ev, tmp_path / "report").read_text()
    assert f"by {survey.detection_band}" in html
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["headline"]["redshift_sigma_nmad"] > 0
    # the fifth network's spectra, measured against the mock's true SEDs through this survey's bands
    sed = metrics["sed"]["summary"]
    assert 0 < sed["frac_error_faint"] < 1 and 0 < sed["rest_u_minus_v_nmad"] < 2, sed
    assert {r["band"] for r in metrics["sed"]["chi2_bands"]} <= set(survey.band_names)
    assert "sed_examples.png" in {p.name for p in (tmp_path / "report").iterdir()} and "Spectra (SED network)" in html


def test_bands_study_same_objects(tmp_path):
    from galaxy_spark.commands.bands_study import main

    out = tmp_path / "bands"
    assert main(["--surveys", "jplus,jpas", "--objects", "4000", "--max-epochs", "1", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["surveys"]) == {"jplus", "jpas"} and m["same_objects"] > 20
    assert [m["surveys"][s]["bands"] for s in ("jplus", "jpas")] == [12, 60]
    # the same objects: every estimator is scored on exactly the common test galaxies
    assert {m["surveys"][s][e]["all"]["n"] for s in m["surveys"] for e in ("network", "template_fit", "bpz")} \
        == {m["same_objects"]}
    assert (out / "accuracy_vs_bands.png").stat().st_size > 10_000


def test_bands_study_needs_two_surveys(tmp_path):
    from galaxy_spark.commands.bands_study import main

    assert main(["--surveys", "jplus", "--out", str(tmp_path / "b")]) != 0
