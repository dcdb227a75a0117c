"""Ingest a raw catalogue into data/catalog (Parquet by Field) + data/quarantine.

    spark-submit jobs/ingest.py --input PATH_OR_GLOB [--format auto|csv|ascii|vizier]
        --out data/catalog --quarantine data/quarantine [--thesis-clip]

Also runs with plain `python jobs/ingest.py …` (local Spark from the pipeline defaults,
galaxy_spark/conf/pipeline.yaml; see galaxy_spark/config.py for GALAXY_SPARK_CONF_DIR).
See docs/ingest.md.
"""
from galaxy_spark.catalog.ingest import main as _main
from galaxy_spark.errors import cli_main

main = cli_main(_main)
