"""The real-data check's report: ``write_realdata_report(check, out)`` writes metrics.json, the
scatter plot ``realdata_scatter.png`` and a small self-contained report.html of a finished
``RealDataCheck`` (``galaxy_spark.studies.realdata``) into ``out``, replaced as a whole."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from galaxy_spark.studies.realdata import RealDataCheck
from galaxy_spark.io.commit import staged_replace
from galaxy_spark.drawing import plots as P
from galaxy_spark.drawing.html import fmt, img_html, page, table_html, write_metrics_json, write_report_manifest

SAMPLE_KEYS = ("n", "bias", "sigma_nmad", "outlier_frac", "outlier_frac_rail", "coverage68", "coverage95")


def finetune_table(block: dict) -> pd.DataFrame:
    """Before/after rows (sample × stage) of the fine-tuning check with n, σ_NMAD, bias and outlier
    fraction (metrics.json ``finetune``)."""
    rows = {}
    for entry in (block, block["all_galaxies"]):
        for stage, key in (("before", "before"), (f"after fine-tuning ({block['folds']}-fold)", "after_finetune")):
            rows[f"{entry['sample']}: {stage}"] = entry[key]
    tab = pd.DataFrame(rows).T[["n", "sigma_nmad", "bias", "outlier_frac"]]
    tab.index.name = f"vs {block['label']}"
    return tab


def finetune_section(block: dict | None) -> str:
    """The report section of the fine-tuning check ('' when it did not run)."""
    if not block:
        return ""
    s = block["settings"]
    return ("<h2>Fine-tuning on real labels</h2>"
            f"<p>The redshift network, fine-tuned on real galaxies labelled with {html.escape(block['label_description'])}"
            f" with {block['folds']}-fold cross-validation: folds by a salted hash of ID; each fold is scored by a "
            f"network fine-tuned on the other {block['folds'] - 1} folds ({block['n_labelled_galaxies']} labelled "
            f"galaxies in all; {s['validation_fraction']:g} of each fold's training galaxies for early stopping; "
            f"learning rate × {s['lr_factor']:g}, at most {s['epochs']} epochs; slope correction: "
            f"{html.escape(s['calibration'])}), so no object is scored by a network that trained on it. Before = "
            "the registered model, on the same objects.</p>" + table_html(finetune_table(block)))


def finetune_lines(block: dict) -> list[str]:
    """Console summary of the fine-tuning check."""
    out = [f"fine-tuning ({block['folds']} folds, redshift network, label {block['label']}; "
           f"{block['n_labelled_galaxies']} labelled galaxies):"]
    for entry in (block, block["all_galaxies"]):
        b, a = entry["before"], entry["after_finetune"]
        out.append(f"  {entry['sample']}: n {b['n']}, sigma_nmad {b['sigma_nmad']:.4f} -> {a['sigma_nmad']:.4f}, "
                   f"bias {b['bias']:+.4f} -> {a['bias']:+.4f}, outliers {b['outlier_frac']:.4f} -> "
                   f"{a['outlier_frac']:.4f}")
    return out


def write_realdata_report(check: RealDataCheck, out: Path) -> Path:
    """Write the report directory ``out`` (realdata_scatter.png, metrics.json, report.html, the report
    manifest), replacing any previous one atomically; returns the path of report.html."""
    m, opts = check.metrics, check.options
    res, primary = m["samples"], m["primary_sample"]
    gal = check.samples["all galaxies"]
    input_name = Path(opts.input).name
    out = Path(out)
    with staged_replace(out) as staging:
        plot = P.realdata_scatter(check.z_ref[gal], check.z_phot[gal], check.odds[gal], check.samples[primary][gal],
                                  staging / "realdata_scatter.png",
                                  title=f"{input_name}: {primary}: σ_NMAD {fmt(res[primary]['sigma_nmad'])}, "
                                        f"outliers {fmt(res[primary]['outlier_frac'])}")
        write_metrics_json(staging, m)
        write_report_manifest(staging)
        tab = pd.DataFrame({k: {kk: v.get(kk) for kk in SAMPLE_KEYS} for k, v in res.items()}).T
        tab.index.name = "sample"
        zref, odds, sel = check.reference_column, check.odds_column, m["selection"]
        body = (f"<p>Input <code>{html.escape(input_name)}</code>: {m['rows']['read']} rows read, "
                f"{m['rows']['ingested']} ingested; model <code>{html.escape(opts.model)}</code> (run "
                f"{m['model_run_id']}). Network z_phot vs the survey's own BPZ redshift "
                f"<code>{check.reference_column}</code> — a consistency check against another photo-z, not "
                "against spectroscopy.</p><h2>Redshift</h2>" + table_html(tab)
                + img_html(plot, f"z_phot vs {zref} for galaxies, coloured by {odds}; the primary sample ringed")
                + finetune_section(m.get("finetune"))
                + (("<h2>Spectra (SED network)</h2><p>No true spectra exist for real rows: the predicted "
                    "rest-frame colours' percentiles (to set beside the mock's in the evaluation report) and the "
                    "SED's absolute magnitude against the survey's own.</p>"
                    + table_html(pd.DataFrame(m["sed"]).T)) if m.get("sed") else "")
                + f"<h2>Definitions</h2><p>Galaxies: {html.escape(sel['galaxies'])} (the survey's cut). "
                f"High Odds: {html.escape(sel['high_odds'])}, "
                "i.e. more than 90% of BPZ's p(z) within zb ± 0.02(1+zb): objects whose catalogue "
                f"redshift is secure enough to serve as a reference. ez = (z_phot − {zref})/(1 + {zref}); "
                "σ_NMAD, bias, outliers |ez| &gt; 0.15 as in the evaluation report.</p>")
        (staging / "report.html").write_text(page("Real-data check", body), encoding="utf-8")
    return out / "report.html"


def console_lines(check: RealDataCheck, report: Path) -> list[str]:
    """The real-data job's console summary: the report path, each sample's figures and the
    fine-tuning before/after when it ran."""
    import os

    lines = []
    m = check.metrics
    lines.append(f"report: {os.path.abspath(report)}")
    lines.append(f"rows: {m['rows']}")
    for name, r in m["samples"].items():
        lines.append(f"  {name}: n {r['n']}, sigma_nmad {fmt(r['sigma_nmad'])}, bias {fmt(r['bias'])}, "
              f"outliers {fmt(r['outlier_frac'])}, coverage68 {fmt(r.get('coverage68'))}")
    if "finetune" in m:
        for line in finetune_lines(m["finetune"]):
            lines.append(line)
    return lines
