"""spark-submit jobs/score.py --catalog data/catalog [--model models:/galaxy-ensemble@champion]
[--out data/scores] [--mc-samples N] [--fields 2,3] — score a catalogue with a registered ensemble.

The driver resolves the model URI once (alias → version), checks the catalogue against it, and
broadcasts the NumPy ensemble; each Spark task reads row groups of the catalogue with pyarrow,
scores them and writes Parquet, and never contacts MLflow. Output: Parquet partitioned by Field,
one row per input object, committed per Field.
See docs/scoring.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.score import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
