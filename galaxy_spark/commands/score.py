"""spark-submit jobs/score.py --catalog data/catalog [--model models:/galaxy-ensemble@champion]
[--out data/scores] [--mc-samples N] [--fields 2,3] [--synthetic-filters sdss2010-g,lsst2023-i]
— score a catalogue with a registered ensemble.

The driver resolves the model URI once (alias → version), checks the catalogue against it, and
broadcasts the NumPy ensemble; each Spark task reads row groups of the catalogue with pyarrow,
scores them and writes Parquet, and never contacts MLflow. Output: Parquet partitioned by Field,
one row per input object, committed per Field.
See docs/scoring.md.
"""
import argparse
import sys

from galaxy_spark.config import load_pipeline_config
from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


def parse_args(argv):
    cfg = load_pipeline_config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--catalog", default=cfg["paths"]["catalog"], help="partitioned Parquet catalogue (jobs/ingest.py)")
    cli.add_model(p, cli.default_model(cfg))
    p.add_argument("--out", default=cfg["paths"]["scores"], help="scores directory (Parquet by Field)")
    cli.add_scoring(p, cfg.get("scoring") or {})
    p.add_argument("--fields", default=None, help="comma-separated Field numbers (None: all)")
    cli.add_batch_size(p)
    cli.add_master(p)
    cli.add_survey(p)
    cli.add_tracking(p)
    p.add_argument("--synthetic-filters", default="",
                   help="comma-separated filters to add synthetic magnitudes in (models with an SED network): "
                        "speclite names (sdss2010-u…z, lsst2023-u…y, decam2014-g…, hsc2017-g…, Euclid-VIS/Y/J/H, "
                        "twomass-J/H/Ks, wise2010-W1…, bessell-U…I, galex-fuv/nuv) or two-column curve files "
                        "(Å, throughput); one column mag_<filter> (+ _err) each")
    p.add_argument("--coverage", action="store_true",
                   help="report the 68%%/95%% interval coverage on the test split after scoring")
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.estimate.job import JobOptions, run_scoring
    from galaxy_spark.model.tracking import configure_tracking

    configure_tracking(args.tracking_uri, job="score")
    run_scoring(JobOptions(catalog=args.catalog, out=args.out, model=args.model, fields=args.fields,
                           mc_samples=args.mc_samples, mc_seed=args.mc_seed, min_bands=args.min_bands,
                           master=args.master, batch_size=args.batch_size, coverage=args.coverage,
                           survey=args.survey,
                           synthetic_filters=tuple(f.strip() for f in args.synthetic_filters.split(",") if f.strip())))
    return 0
