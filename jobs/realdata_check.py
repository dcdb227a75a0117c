"""spark-submit jobs/realdata_check.py --input PATH [--model models:/galaxy-ensemble@champion] --out reports/realdata

Ingests real ALHAMBRA rows (VizieR CSV by default; any format the ingest reads) with the ingest
code, scores them in-process with the model's Ensemble, and compares z_phot with the survey's own
BPZ redshift zb_1 for galaxies (Stellar_Flag < 0.7) with high Odds_1 (> 0.9), and for all
galaxies: sigma_NMAD, bias, outlier fraction, interval coverage, a scatter plot. Writes
report.html, metrics.json and realdata_scatter.png to --out. See docs/evaluation.md.

With --finetune-folds K (K >= 2) it also adapts the model to real data (galaxy_spark/train/finetune.py):
the redshift network is fine-tuned on labelled real galaxies (Stellar_Flag cut; label zb_1, another
column, or z_spec from --finetune-spec) with K-fold cross-validation by ID hash, so every galaxy is
scored by a network that never saw it; metrics.json gains a "finetune" block (before vs after,
F814W < 22.5 galaxies and all galaxies) and the report a before/after table.

Composes galaxy_spark.evaluate.realdata (the check) and galaxy_spark.report.realdata (the report).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.realdata_check import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
