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

Composes galaxy_spark.studies.realdata (the check) and galaxy_spark.studies.realdata_report (the report).
"""
import argparse
import os
import sys


from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


def parse_args(argv):
    from galaxy_spark.studies.realdata import ODDS_MIN, STELLAR_FLAG_MAX

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--input", default=None, help="real catalogue rows (e.g. a VizieR CSV of the survey's)")
    p.add_argument("--format", default="vizier", help="ingest format: vizier | ascii | csv | auto")
    p.add_argument("--model", default="models:/galaxy-ensemble@champion", help="MLflow model URI")
    p.add_argument("--out", default=os.path.join("reports", "realdata"), help="report directory, replaced atomically")
    p.add_argument("--odds-min", type=float, default=ODDS_MIN, help="high-Odds cut on the survey's redshift_odds label")
    p.add_argument("--stellar-flag-max", type=float, default=STELLAR_FLAG_MAX,
                   help="galaxies: the survey's stellar_flag label below this")
    cli.add_survey(p)
    ft = p.add_argument_group("sim-to-real fine-tuning (off unless --finetune-folds K)")
    ft.add_argument("--finetune-folds", type=int, default=0, metavar="K",
                    help="fine-tune the redshift network on the labelled real galaxies with K-fold cross-validation "
                         "(folds by ID hash; each fold scored by a network fine-tuned on the other K-1); 0 = off, "
                         "else K >= 2 and at most the number of labelled galaxies")
    ft.add_argument("--finetune-label", default=None, metavar="COLUMN",
                    help="label column of the input to fine-tune on (None: the survey's own redshift label)")
    ft.add_argument("--finetune-spec", default=None, metavar="FILE",
                    help="spectroscopic sample (CSV/Parquet: ID, z_spec[, spec_class, z_spec_quality]): fine-tune on "
                         "z_spec of its secure (quality >= 3) galaxies instead of a column of the input")
    ft.add_argument("--finetune-epochs", type=int, default=40, help="at most this many epochs per fold (early stopping)")
    ft.add_argument("--finetune-lr-factor", type=float, default=0.1,
                    help="learning rate = this x the preset's learning rate")
    ft.add_argument("--finetune-calibration", default="refit", choices=("keep", "refit", "identity"),
                    help="redshift slope correction after fine-tuning: keep the model's (fitted on the mock), refit "
                         "it on each fold's early-stopping galaxies, or drop it")
    ft.add_argument("--finetune-seed", type=int, default=42, help="seed of the fold hash and of Keras")
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.errors import InputError
    from galaxy_spark.studies.realdata import RealDataOptions, run_realdata_check
    from galaxy_spark.studies.realdata_report import console_lines, write_realdata_report
    from galaxy_spark.spark import get_spark
    from galaxy_spark.model.tracking import configure_tracking

    if not args.input:
        raise InputError("no --input given: pass a real catalogue file (e.g. a VizieR CSV of the survey's rows)")
    if not os.path.exists(args.input):
        raise InputError(f"input not found: {args.input}")
    from galaxy_spark.train.finetune import FinetuneSettings, check_options

    check_options(args.finetune_folds, args.finetune_label, args.finetune_spec,  # before Spark starts
                  FinetuneSettings(epochs=args.finetune_epochs, lr_factor=args.finetune_lr_factor,
                                   calibration=args.finetune_calibration, seed=args.finetune_seed))
    configure_tracking()
    spark = get_spark("galaxy_spark-realdata")
    try:
        check = run_realdata_check(RealDataOptions(input=args.input, out=args.out, model=args.model, format=args.format,
                                                   odds_min=args.odds_min, stellar_flag_max=args.stellar_flag_max,
                                                   survey=args.survey, finetune_folds=args.finetune_folds,
                                                   finetune_label=args.finetune_label, finetune_spec=args.finetune_spec,
                                                   finetune_epochs=args.finetune_epochs,
                                                   finetune_lr_factor=args.finetune_lr_factor,
                                                   finetune_calibration=args.finetune_calibration,
                                                   finetune_seed=args.finetune_seed), spark)
    finally:
        spark.stop()
    report = write_realdata_report(check, args.out)
    for line in console_lines(check, report):
        print(line)
    return 0

