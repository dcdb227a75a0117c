"""Generate the mock ALHAMBRA catalogue, or validate it against real rows.

    python jobs/mock.py --objects 446343 --seed 42 --format csv --out data/raw/alhambra_mock.csv
    python jobs/mock.py --format ascii --out data/raw/mock_ascii          # 48 public-style files
        (each also writes its spectroscopic sample: alhambra_mock.specz.csv, mock_ascii.specz.csv)
    python jobs/mock.py --validate --real ../shared/data/alhambra_f02_vizier_sample.csv \
        --objects 60000 --seed 42 --out reports/mock-validation

Runs with plain python or under spark-submit; it does not need Spark.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.mock import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
