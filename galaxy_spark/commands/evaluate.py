"""spark-submit jobs/evaluate.py --scores data/scores --catalog data/catalog --out reports/NAME

Joins the scores (jobs/score.py) with the catalogue on ID, keeps the held-out test split, computes
the field-standard metrics against the catalogue labels (and the mock's truth when present), runs
the BPZ baseline on the same objects, builds the thesis table from the MLflow runs, and writes
report.html (self-contained), metrics.json and the PNGs to --out. Logs them and the headline
metrics to the MLflow run of the model that produced the scores. See docs/evaluation.md.

Composes the three steps: galaxy_spark.evaluate (the metrics), galaxy_spark.report (the report
directory), galaxy_spark.evaluate.tracking (the MLflow logging of the written report).
"""
import argparse
import os
import sys


from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


def parse_args(argv):
    from galaxy_spark.config import load_pipeline_config
    from galaxy_spark.evaluate.baseline import BPZ_MAX_OBJECTS

    cfg = load_pipeline_config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--scores", default=cfg["paths"].get("scores", "data/scores"), help="scores directory (jobs/score.py)")
    p.add_argument("--catalog", default=cfg["paths"]["catalog"], help="partitioned Parquet catalogue (jobs/ingest.py)")
    p.add_argument("--out", default=None, help="report directory, replaced atomically (None: reports/evaluation)")
    p.add_argument("--model", default=None,
                   help="model URI for the throughput timing (None: the scores' model name/version)")
    p.add_argument("--model-run-id", default=None, help="evaluate only the scores of this model run")
    p.add_argument("--bpz-max-objects", type=cli.positive_int, default=BPZ_MAX_OBJECTS,
                   help="cap on the BPZ baseline's ID-hash subsample of the test split (every spectroscopic test object is added)")
    p.add_argument("--no-bpz", action="store_true", help="skip the BPZ baseline")
    p.add_argument("--no-mlflow", action="store_true",
                   help="do not read from or log to MLflow (no thesis runs, loss curves or throughput)")
    p.add_argument("--experiment", default=None, help="experiment searched for the paper/default runs "
                   "(None: the model run's)")
    p.add_argument("--spec", default=None,
                   help="spectroscopic sample (CSV or Parquet: ID, z_spec, …): adds the spectroscopic "
                        "comparison beside emulation and truth")
    p.add_argument("--spec-min-quality", type=int, default=3, help="lowest z_spec_quality counted as secure")
    cli.add_survey(p)
    cli.add_tracking(p)
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.errors import InputError
    from galaxy_spark.evaluate.job import EvalOptions, run_evaluation
    from galaxy_spark.evaluate.tracking import log_evaluation
    from galaxy_spark.report.evaluation import console_lines, write_report
    from galaxy_spark.spark import get_spark

    for what, path, hint in (("scores", args.scores, "run jobs/score.py first"),
                             ("catalogue", args.catalog, "run jobs/ingest.py first")):
        if not os.path.exists(path):
            raise InputError(f"{what} not found: {path} ({hint})")
    if not args.no_mlflow:
        from galaxy_spark.model.tracking import configure_tracking
        configure_tracking(args.tracking_uri, job="evaluate")
    out = args.out
    if out is None:
        out = os.path.join("reports", "evaluation")
    name = os.path.basename(os.path.abspath(out))
    spark = get_spark("galaxy_spark-evaluate")
    try:
        ev = run_evaluation(EvalOptions(scores=args.scores, catalog=args.catalog, out=out, model=args.model,
                                        model_run_id=args.model_run_id, bpz_max_objects=args.bpz_max_objects,
                                        bpz=not args.no_bpz, mlflow=not args.no_mlflow,
                                        experiment=args.experiment, survey=args.survey, spec=args.spec,
                                        spec_min_quality=args.spec_min_quality), spark)
    finally:
        spark.stop()
    report = write_report(ev, out, title=f"galaxy_spark evaluation: {name}")
    n_logged = None if args.no_mlflow else log_evaluation(ev.metrics, out, name)
    for line in console_lines(ev, report, out, n_logged):
        print(line)
    return 0

