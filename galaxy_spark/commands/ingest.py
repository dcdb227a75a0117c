"""Ingest a raw catalogue into data/catalog (Parquet by Field) + data/quarantine.

    spark-submit jobs/ingest.py --input PATH_OR_GLOB [--format auto|csv|ascii|vizier]
        --out data/catalog --quarantine data/quarantine [--thesis-clip]

Also runs with plain `python jobs/ingest.py …` (local Spark from the pipeline defaults,
galaxy_spark/conf/pipeline.yaml; see galaxy_spark/config.py for GALAXY_SPARK_CONF_DIR).
See docs/ingest.md.
"""
import argparse
import sys

from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


@cli_main
def main(argv: list[str] | None = None) -> int:
    from galaxy_spark.catalog import readers as R
    from galaxy_spark.catalog.ingest import DEFAULT_MAX_ROW_DROP, run_ingest
    from galaxy_spark.config import load_pipeline_config
    from galaxy_spark.errors import InputError
    from galaxy_spark.log import get_logger

    log = get_logger("ingest")
    argv = sys.argv[1:] if argv is None else argv
    cfg = load_pipeline_config()
    ic = cfg.get("ingest") or {}
    p = argparse.ArgumentParser(prog="ingest", formatter_class=HelpFormatter, description=(
        "Read a raw survey catalogue (public ASCII, CSV or VizieR CSV, as the survey file describes), decode the "
        "sentinels, quarantine invalid rows and write Parquet partitioned by Field."))
    p.add_argument("--input", default=cfg["paths"].get("raw"),
                   help="raw catalogue: a file, a directory of files or a glob (quote it)")
    p.add_argument("--format", default="auto", choices=("auto",) + R.FORMATS,
                   help="input format; auto detects it from the first lines of each file")
    p.add_argument("--out", default=cfg["paths"].get("catalog"),
                   help="catalogue directory (Parquet by Field + _manifest.json), replaced atomically")
    p.add_argument("--quarantine", default=cfg["paths"].get("quarantine"),
                   help="directory for rejected rows (Parquet, with reason, file and line), "
                        "committed together with the catalogue")
    p.add_argument("--thesis-clip", action="store_true",
                   help="also write B_thesis: magnitudes clipped to the thesis' range")
    cli.add_survey(p)
    p.add_argument("--replace", action="store_true",
                   help="commit even when the result has no valid row or far fewer rows than the "
                        "catalogue it replaces (see --max-row-drop)")
    p.add_argument("--max-row-drop", type=float, default=float(ic.get("max_row_drop", DEFAULT_MAX_ROW_DROP)),
                   help="largest fraction of the existing catalogue's rows a new ingest may lose "
                        "without --replace")
    p.add_argument("--strict", action="store_true",
                   help="quarantine a file's last line when it has no final newline (a copy cut short looks "
                        "exactly like this); without it the line is ingested and named in the summary")
    p.add_argument("--quiet", action="store_true", help="print the summary without the JSON")
    a = p.parse_args(argv)
    if not a.input:
        raise InputError("no --input given")
    if not 0.0 <= a.max_row_drop <= 1.0:
        raise InputError(f"--max-row-drop must be in [0, 1], got {a.max_row_drop}")
    echo = (lambda s: log.info(s.split("\n{", 1)[0])) if a.quiet else log.info
    run_ingest(a.input, a.out, a.quarantine, fmt=a.format, thesis_clip=a.thesis_clip,
               survey=a.survey, echo=echo, replace=a.replace, max_row_drop=a.max_row_drop, strict=a.strict)
    sys.stdout.flush()
    return 0
