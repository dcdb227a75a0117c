"""spark-submit jobs/reprocess.py --catalog data/catalog --scores data/scores
[--model models:/galaxy-ensemble@champion] [--dry-run] [--force] [--prune] [--wait S]
— rescore only the Fields whose input or model changed; safe to run from cron or Airflow.

Per Field of the catalogue: rescore when there are no scores, the catalogue partition changed
(ingest-manifest fingerprint, else a fingerprint of its files), the model the URI resolves to now
differs from the one that scored it, the scoring options changed, the row counts differ, or
--force. Each Field is committed atomically; one ledger record per Field per run goes to
<scores>/_ledger.jsonl; <scores>/_reprocess.lock keeps two runs apart. See docs/reprocess.md.

Exit codes:
  0   done, or nothing to do (also --dry-run)
  1   a Field failed while rescoring (the others are committed; the failed one keeps its old scores)
  2   bad input or configuration, including a corrupt ledger (nothing was rescored)
  75  another run holds the lock (EX_TEMPFAIL): retry later, or pass --wait SECONDS
"""
import argparse
import sys

from galaxy_spark.config import load_pipeline_config
from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


def parse_args(argv):
    from galaxy_spark.estimate.reprocess import DEFAULT_LOCK_MAX_AGE_S

    cfg = load_pipeline_config()
    sc = cfg.get("scoring") or {}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--catalog", default=cfg["paths"]["catalog"], help="partitioned Parquet catalogue (jobs/ingest.py)")
    p.add_argument("--scores", "--out", dest="scores", default=cfg["paths"]["scores"],
                   help="scores directory (Parquet by Field, as written by jobs/score.py)")
    cli.add_model(p, cli.default_model(cfg))
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit 0 (no lock, no Spark, no writes)")
    p.add_argument("--force", action="store_true", help="rescore every Field")
    p.add_argument("--prune", action="store_true",
                   help="remove scores of Fields that are no longer in the catalogue (without it: keep them, with a warning)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for a lock held by another run (0: exit 75 at once)")
    p.add_argument("--lock-max-age", type=float, default=DEFAULT_LOCK_MAX_AGE_S, metavar="SECONDS",
                   help="a lock taken on another host older than this is stale (0: never); "
                        "on this host a lock is stale exactly when its process is gone")
    cli.add_scoring(p, sc)
    cli.add_batch_size(p)
    cli.add_master(p)
    cli.add_survey(p)
    cli.add_tracking(p)
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.estimate.reprocess import ReprocessOptions, run_reprocess
    from galaxy_spark.model.tracking import configure_tracking

    configure_tracking(args.tracking_uri, job="reprocess")
    res = run_reprocess(ReprocessOptions(
        catalog=args.catalog, scores=args.scores, model=args.model, dry_run=args.dry_run, force=args.force,
        prune=args.prune, wait_s=args.wait, lock_max_age_s=args.lock_max_age, mc_samples=args.mc_samples,
        mc_seed=args.mc_seed, min_bands=args.min_bands, master=args.master,
        survey=args.survey, batch_size=args.batch_size),
        echo=lambda m: print(m, flush=True))
    return res.exit_code

