"""spark-submit jobs/realdata_check.py --input PATH [--model models:/galaxy-ensemble@champion] --out reports/realdata

Ingests real ALHAMBRA rows (VizieR CSV by default; any format the ingest reads) with the ingest
code, scores them in-process with the model's Ensemble, and compares z_phot with the survey's own
BPZ redshift zb_1 for galaxies (Stellar_Flag < 0.7) with high Odds_1 (> 0.9), and for all
galaxies: sigma_NMAD, bias, outlier fraction, interval coverage, a scatter plot. Writes
report.html, metrics.json and realdata_scatter.png to --out. See docs/evaluation.md.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main  # noqa: E402


def parse_args(argv):
    from galaxy_spark.evaluation import ODDS_MIN, STELLAR_FLAG_MAX

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--input", default=None, help="real catalogue rows (e.g. a VizieR CSV of ALHAMBRA)")
    p.add_argument("--format", default="vizier", help="ingest format: vizier | ascii | csv | auto")
    p.add_argument("--model", default="models:/galaxy-ensemble@champion", help="MLflow model URI")
    p.add_argument("--out", default=os.path.join("reports", "realdata"), help="report directory, replaced atomically")
    p.add_argument("--odds-min", type=float, default=ODDS_MIN, help="high-Odds cut on Odds_1")
    p.add_argument("--stellar-flag-max", type=float, default=STELLAR_FLAG_MAX,
                   help="galaxies: Stellar_Flag below this")
    p.add_argument("--survey", default="alhambra", help="survey definition: a name in conf/surveys/ or a path to a YAML file")
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.errors import InputError
    from galaxy_spark.evaluation import RealDataOptions, run_realdata_check
    from galaxy_spark.report import fmt
    from galaxy_spark.spark import get_spark
    from galaxy_spark.tracking import configure_tracking

    if not args.input:
        raise InputError("no --input given: pass a real catalogue file (e.g. the VizieR CSV of ALHAMBRA rows)")
    if not os.path.exists(args.input):
        raise InputError(f"input not found: {args.input}")
    configure_tracking()
    spark = get_spark("galaxy_spark-realdata")
    try:
        res = run_realdata_check(RealDataOptions(input=args.input, out=args.out, model=args.model, format=args.format,
                                                 odds_min=args.odds_min, stellar_flag_max=args.stellar_flag_max,
                                                 survey=args.survey), spark)
    finally:
        spark.stop()
    m = res["metrics"]
    print(f"report: {os.path.abspath(res['report'])}")
    print(f"rows: {m['rows']}")
    for name, r in m["samples"].items():
        print(f"  {name}: n {r['n']}, sigma_nmad {fmt(r['sigma_nmad'])}, bias {fmt(r['bias'])}, "
              f"outliers {fmt(r['outlier_frac'])}, coverage68 {fmt(r.get('coverage68'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
