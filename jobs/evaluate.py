"""spark-submit jobs/evaluate.py --scores data/scores --catalog data/catalog --out reports/NAME

Joins the scores (jobs/score.py) with the catalogue on ID, keeps the held-out test split, computes
the field-standard metrics against the catalogue labels (and the mock's truth when present), runs
the BPZ baseline on the same objects, builds the thesis table from the MLflow runs, and writes
report.html (self-contained), metrics.json and the PNGs to --out. Logs them and the headline
metrics to the MLflow run of the model that produced the scores. See docs/evaluation.md.

Composes the three steps: galaxy_spark.evaluate (the metrics), galaxy_spark.report (the report
directory), galaxy_spark.evaluate.tracking (the MLflow logging of the written report).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
