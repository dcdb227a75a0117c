"""spark-submit jobs/train.py --catalog data/catalog --preset default|paper — train, track, register.

Spark reads the catalogue; the driver trains the four networks of the preset, logs one parent run
with a nested run per network to MLflow and registers the ensemble (alias champion/challenger).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
