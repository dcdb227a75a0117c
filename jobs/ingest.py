"""Ingest a raw catalogue into data/catalog (Parquet by Field) + data/quarantine.

    spark-submit jobs/ingest.py --input PATH_OR_GLOB [--format auto|csv|ascii|vizier]
        --out data/catalog --quarantine data/quarantine [--thesis-clip]

Also runs with plain `python jobs/ingest.py …` (local Spark from the pipeline defaults,
galaxy_spark/conf/pipeline.yaml; see galaxy_spark/config.py for GALAXY_SPARK_CONF_DIR).
See docs/ingest.md.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from galaxy_spark.commands.ingest import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
