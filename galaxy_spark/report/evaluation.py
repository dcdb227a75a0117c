"""The evaluation report: ``write_report(evaluation, out)`` draws the figures
(``drawing.plots``) of a finished ``Evaluation`` (``galaxy_spark.evaluate.job``) and writes
``report.html`` (self-contained), ``metrics.json`` and the PNGs into ``out``, replaced as a whole
(``io.commit.staged_replace``: a failed write leaves the previous report in place)."""
from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_spark import metrics as M
from galaxy_spark.evaluate.data import num
from galaxy_spark.evaluate.job import Evaluation
from galaxy_spark.io.commit import staged_replace
from galaxy_spark.drawing import plots as P
from galaxy_spark.drawing import sed_plots as SP
from galaxy_spark.model.heads import HEADS
from galaxy_spark.drawing.html import (anchor, fmt, img_html, page, section, table_html, write_metrics_json,
                                      write_report_manifest)

SECTIONS = ("Summary", "Three comparisons", "Data", "Redshift", "Redshift: network vs BPZ", "Probabilistic redshift",
            "Star/galaxy", "Stellar mass and spectral type", "Spectra (SED network)", "The thesis side by side",
            "Training curves",
            "Definitions")


REDSHIFT_KEYS = ("n", "bias", "sigma_nmad", "outlier_frac", "outlier_frac_rail", "sigma_iqr", "crps",
                 "coverage68", "coverage95", "pit_ks")
BIN_KEYS = ("lo", "hi", "count", "bias", "sigma_nmad", "outlier_frac", "outlier_frac_rail")


def _overall_rows(rows: dict[str, dict], keys) -> pd.DataFrame:
    df = pd.DataFrame({k: {kk: v.get(kk, np.nan) for kk in keys} for k, v in rows.items()}).T
    df.index.name = "estimator / labels"
    return df


def _bins(df: pd.DataFrame, keys=BIN_KEYS) -> pd.DataFrame:
    if df is None or not len(df):
        return pd.DataFrame()
    return df[[k for k in keys if k in df.columns]].set_index(["lo", "hi"]).reset_index()


def _side_by_side(net: pd.DataFrame, bpz: pd.DataFrame) -> pd.DataFrame:
    keys = ("count", "sigma_nmad", "bias", "outlier_frac", "outlier_frac_rail")
    out = net[["lo", "hi"]].copy()
    out["count"] = net["count"]
    for k in keys[1:]:
        out[f"network {k}"] = net[k]
        out[f"BPZ {k}"] = bpz[k]
    return out


def make_plots(ev: Evaluation, out: Path) -> dict[str, tuple[Path, str]]:
    """Draw every figure of the report into ``out``; returns {key: (path, caption)}."""
    det = ev.metrics["data"]["detection_band"]
    plots = {"pred_vs_true": _pred_vs_true_plot(ev, out)}
    plots.update(_redshift_plots(ev, out, det))
    plots.update(_star_and_binned_plots(ev, out, det))
    plots["loss"] = (P.epoch_curves(ev.histories, out / "loss_curves.png"),
                     "Loss per epoch of the model's networks (MLflow metric history)")
    if ev.sed:
        plots.update(_sed_plots(ev.sed, out, det))
    return plots


def _pred_vs_true_plot(ev: Evaluation, out: Path) -> tuple[Path, str]:
    """Predicted vs true density panels: each head's point estimate against each label set that has
    its labels (the classifier's label selects the galaxies; spectroscopy has no type or mass), and
    BPZ's redshift."""
    df, primary = ev.frame, ev.metrics["headline"]["labels"]
    classifier = next(h.name for h in HEADS if h.kind == "classifier")
    panels = []
    for src, lab in ev.labels.items():
        gal = lab[classifier] == 0
        for h in HEADS:
            if h.kind in ("pdf", "regression") and h.name in lab and np.isfinite(lab[h.name][gal]).any():
                panels.append({"true": lab[h.name][gal], "pred": num(df, h.column(0))[gal],
                               "label": _AXIS_LABEL.get(h.name, h.name), "title": f"{h.name.replace('_', ' ')} vs {src}"})
    b = ev.bpz_frame
    if b is not None and f"z_{primary}" in b:
        g = b[f"galaxy_{primary}"].to_numpy(bool)
        panels.append({"true": b[f"z_{primary}"].to_numpy(float)[g], "pred": b["zb"].to_numpy(float)[g],
                       "label": "z", "title": f"BPZ zb vs {primary}"})
    return (P.density_panels(panels, out / "pred_vs_true.png"),
            "Predicted vs true (galaxies; log density): every output, each label set, and BPZ")


_AXIS_LABEL = {"redshift": "z", "spectral_type": "spectral type", "stellar_mass": "log M*"}


def _redshift_plots(ev: Evaluation, out: Path, det: str) -> dict:
    """Residuals against magnitude and redshift, n(z), PIT: the network (and BPZ on its objects)."""
    m, df, primary, b = ev.metrics, ev.frame, ev.metrics["headline"]["labels"], ev.bpz_frame
    lab = ev.labels[primary]
    gal = lab["stellarity"] == 0
    plots = {}
    if b is not None and f"z_{primary}" in b:
        g = b[f"galaxy_{primary}"].to_numpy(bool)
        zt = b[f"z_{primary}"].to_numpy(float)[g]
        series = {"network": M.ez(b["z_phot"].to_numpy(float)[g], zt), "BPZ": M.ez(b["zb"].to_numpy(float)[g], zt)}
        xm = b["mag"].to_numpy(float)[g]
        where = f"the {len(b):,} objects of the BPZ comparison"
    else:
        zt = lab["redshift"][gal]
        series = {"network": M.ez(num(df, "z_phot")[gal], zt)}
        xm = ev.mag[gal]
        where = "the test split"
    plots["residuals_mag"] = (P.residuals(xm, series, det, out / "residuals_vs_mag.png"),
                              f"Δz/(1+z) vs {det} against {primary} labels, {where}: running median ± NMAD")
    plots["residuals_z"] = (P.residuals(zt, series, f"z ({primary})", out / "residuals_vs_z.png"),
                            f"Δz/(1+z) vs redshift against {primary} labels, {where}")
    preds = {"network": num(df, "z_phot")[gal]}
    if b is not None:
        preds["BPZ"] = b["zb"].to_numpy(float)[b[f"galaxy_{primary}"].to_numpy(bool)]
    plots["nz"] = (P.nz(lab["redshift"][gal], preds, out / "nz.png", true_label=f"{primary} z"),
                   "n(z) of galaxies: labels vs network (test split) vs BPZ (its subsample)")
    hists = {}
    base = m.get("baseline")
    if base and primary in base.get("bpz", {}):
        hists["network"] = base["network"][primary]["redshift"].get("pit")
        hists["BPZ"] = base["bpz"][primary]["redshift"].get("pit")
    else:
        hists["network"] = m["network"][primary]["redshift"].get("pit")
    hists = {k: v for k, v in hists.items() if v}
    plots["pit"] = (P.pit(hists, out / "pit.png"),
                    f"PIT histograms against {primary} labels (network: from its five quantiles; BPZ: from p(z))")
    return plots


def _star_and_binned_plots(ev: Evaluation, out: Path, det: str) -> dict:
    """Star/galaxy ROC and purity/completeness; σ_NMAD, bias and outliers per bin."""
    m, df, primary = ev.metrics, ev.frame, ev.metrics["headline"]["labels"]
    base = m.get("baseline")
    plots = {}
    roc = {}
    for src, lab_s in ev.labels.items():
        fpr, tpr = M.roc_curve(lab_s["stellarity"], num(df, "p_star"))
        roc[f"network vs {src}"] = (fpr, tpr, m["network"][src]["stellarity"]["overall"]["roc_auc"])
    by_mag = m["network"][primary]["stellarity"]["by_mag"]
    plots["star_galaxy"] = (P.star_galaxy(roc, by_mag, out / "star_galaxy.png", det),
                            f"Star/galaxy: ROC and purity/completeness vs {det} ({primary} labels, p_star ≥ 0.5)")
    if base and primary in base.get("bpz", {}):
        tabs_m = {"network": base["network"][primary]["redshift"]["by_mag"],
                  "BPZ": base["bpz"][primary]["redshift"]["by_mag"]}
        tabs_z = {"network": base["network"][primary]["redshift"]["by_z"],
                  "BPZ": base["bpz"][primary]["redshift"]["by_z"]}
    else:
        tabs_m = {"network": m["network"][primary]["redshift"]["by_mag"]}
        tabs_z = {"network": m["network"][primary]["redshift"]["by_z"]}
    plots["binned_mag"] = (P.binned_compare(tabs_m, det, out / "binned_vs_mag.png"),
                           f"σ_NMAD, bias and outlier fraction per {det} bin (same objects)")
    plots["binned_z"] = (P.binned_compare(tabs_z, f"z ({primary})", out / "binned_vs_z.png"),
                         "σ_NMAD, bias and outlier fraction per redshift bin (same objects)")
    return plots


def _sed_plots(a: dict, out: Path, det: str) -> dict:
    plots = {}
    plots["sed_examples"] = (SP.sed_examples(a["examples"], out / "sed_examples.png", det),
                             f"A dozen test galaxies ({det} < 23, spanning the true rest-frame colour): measured "
                             "magnitudes, the true SED at the true redshift and the predicted SED at z_phot, each "
                             f"scaled to its {det} magnitude")
    plots["sed_colours"] = (SP.sed_colours(a, out / "sed_colours.png", det),
                            "Rest-frame colour of the test galaxies (truth, network, catalogue-label template) "
                            "and the colour–magnitude diagrams: red sequence and blue cloud")
    plots["sed_errors"] = (SP.sed_errors(a, out / "sed_errors.png", det),
                           "SED reconstruction error against the truth by magnitude, and χ² per band against "
                           "the measured photometry")
    return plots


def _kpis(h: dict) -> str:
    items = [("σ_NMAD", h.get("redshift_sigma_nmad")), ("bias", h.get("redshift_bias")),
             ("outliers >0.15", h.get("redshift_outlier_frac")), ("CRPS", h.get("redshift_crps")),
             ("star bal. accuracy", h.get("stellarity_balanced_accuracy")), ("star ROC AUC", h.get("stellarity_roc_auc")),
             ("log M* NMAD", h.get("stellar_mass_nmad")), ("type NMAD", h.get("spectral_type_nmad"))]
    if h.get("bpz_sigma_nmad") is not None:
        items += [("BPZ σ_NMAD (same obj.)", h.get("bpz_sigma_nmad")),
                  ("network σ_NMAD (same obj.)", h.get("network_sigma_nmad_same_objects")),
                  ("throughput ratio", h.get("throughput_ratio"))]
    return "".join(f"<div class='kpi'>{html.escape(k)}<b>{fmt(v)}</b></div>" for k, v in items)


def render_html(ev: Evaluation, plots: dict, title: str) -> str:
    """The report page: every section of ``SECTIONS`` from the metrics, tables and ``plots``."""
    m = ev.metrics
    d = m["data"]
    det = d["detection_band"]
    rows = _redshift_rows(m)
    parts = [_summary_section(m), *_comparison_section(m), _data_section(d), _redshift_section(m, rows, plots, det),
             _baseline_section(m, plots, det, d["survey"]), _pz_section(rows, plots), _star_section(m, plots, det),
             _mass_type_section(m, det), _sed_section(m.get("sed"), plots, det), _thesis_section(m),
             section("Training curves", img_html(*plots["loss"])), _definitions_section(d)]
    nav = "".join(f'<a href="#{anchor(s)}">{html.escape(s)}</a>' for s in SECTIONS)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return page(title, f"<p class='muted'>written {stamp}; model run {html.escape(str(d.get('model_run_id')))}</p>"
                       f"<nav>{nav}</nav>" + "\n".join(parts))


def _summary_section(m: dict) -> str:
    d, h = m["data"], m["headline"]
    return section("Summary", f"<p>Held-out test split, {fmt(d['n_test'])} objects; headline figures "
                   f"against the <b>{html.escape(h['labels'])}</b> labels (galaxies for the redshift, "
                   f"mass and type; all objects for star/galaxy).</p>{_kpis(h)}"
                   + ("".join(f"<p class='muted'>note: {html.escape(n)}</p>" for n in m.get("notes", []))))


def _comparison_section(m: dict) -> list[str]:
    if not m.get("comparisons"):
        return []
    comp = pd.DataFrame(m["comparisons"]).set_index("comparison")
    return [section("Three comparisons", (
        "<p>Network and BPZ on the <b>same galaxies</b> of the test split. <i>Emulation</i>: against "
        "the catalogue's own template-fit values (the thesis' task; on real data BPZ's answers). "
        "<i>Spectroscopic</i>: against secure spectroscopic redshifts — what can be measured on "
        "real data. <i>Truth</i>: the simulation's true redshifts, which exist only in the mock.</p>")
        + table_html(comp))]


def _data_section(d: dict) -> str:
    dtab = pd.DataFrame({"value": {k: d.get(k) for k in (
        "model_run_id", "model_name", "model_version", "model_uri", "n_scores", "n_scores_run",
        "n_scores_in_catalogue", "n_test", "test_split", "label_sets", "detection_band", "seconds")}})
    dtab["value"] = dtab["value"].map(lambda v: ", ".join(v) if isinstance(v, list) else v)
    dtab.index.name = "item"
    return section("Data", table_html(dtab)
                   + f"<p class='muted'>Galaxies: catalogue {html.escape(d['galaxy_definition']['catalogue'])}; "
                     f"truth {html.escape(d['galaxy_definition']['truth'])}.</p>")


def _redshift_rows(m: dict) -> dict:
    """Overall redshift metrics per estimator and label set (network; network and BPZ on BPZ's objects)."""
    rows = {f"network / {src}": v["redshift"]["overall"] for src, v in m["network"].items()}
    base = m.get("baseline")
    if base:
        for src in m["network"]:
            if src in base["bpz"]:
                rows[f"network, BPZ objects / {src}"] = base["network"][src]["redshift"]["overall"]
                rows[f"BPZ / {src}"] = base["bpz"][src]["redshift"]["overall"]
    return rows


def _redshift_section(m: dict, rows: dict, plots: dict, det: str) -> str:
    body = table_html(_overall_rows(rows, REDSHIFT_KEYS))
    body += img_html(*plots["pred_vs_true"])
    for src, v in m["network"].items():
        body += f"<h3>Network, by {det} ({html.escape(src)} labels, whole test split)</h3>" + table_html(
            _bins(v["redshift"]["by_mag"]), index=False)
        body += f"<h3>Network, by redshift ({html.escape(src)} labels)</h3>" + table_html(
            _bins(v["redshift"]["by_z"]), index=False)
    body += img_html(*plots["residuals_mag"]) + img_html(*plots["residuals_z"]) + img_html(*plots["nz"])
    return section("Redshift", body)


def _baseline_section(m: dict, plots: dict, det: str, survey: str) -> str:
    base = m.get("baseline")
    if not base:
        return section("Redshift: network vs BPZ", "<p class='muted'>BPZ baseline not run.</p>")
    t = pd.DataFrame({
        "network": {"objects": base["n"], "objects_per_s": base["network"]["timing"].get("objects_per_s"),
                    "seconds": base["network"]["timing"].get("seconds")},
        "BPZ": {"objects": base["n"], "objects_per_s": base["bpz"]["timing"]["objects_per_s"],
                "seconds": base["bpz"]["timing"]["seconds"]}}).T
    t.index.name = "estimator"
    body = (f"<p>BPZ (CWW+Kinney templates, the {html.escape(survey)} response curves, Madau IGM, HDF-N prior; "
            f"<code>galaxy_spark.fitting.bpz</code>) and the network on the same {fmt(base['n'])} test "
            f"objects ({html.escape(base['subsample'])}, at most {fmt(base['cap'])}). Throughput ratio "
            f"network/BPZ: <b>{fmt(base['throughput_ratio'])}×</b> (network: in-process "
            f"<code>Ensemble.predict</code>, features included, best of "
            f"{base['network']['timing'].get('repeats', '–')}; BPZ: the timed fit with p(z); both one "
            f"process on this machine; BPZ grid built once in {fmt(base['bpz']['timing']['grid_seconds'])} s, "
            f"not counted).</p>" + table_html(t))
    for src in m["network"]:
        if src not in base["bpz"]:
            continue
        body += f"<h3>By {det} ({html.escape(src)} labels)</h3>" + table_html(
            _side_by_side(base["network"][src]["redshift"]["by_mag"], base["bpz"][src]["redshift"]["by_mag"]),
            index=False)
        body += f"<h3>By redshift ({html.escape(src)} labels)</h3>" + table_html(
            _side_by_side(base["network"][src]["redshift"]["by_z"], base["bpz"][src]["redshift"]["by_z"]),
            index=False)
    body += img_html(*plots["binned_mag"]) + img_html(*plots["binned_z"])
    return section("Redshift: network vs BPZ", body)


def _pz_section(rows: dict, plots: dict) -> str:
    prow = {k: {kk: v.get(kk) for kk in ("n", "crps", "coverage68", "coverage95", "pit_ks")} for k, v in rows.items()}
    body = ("<p>PIT and CRPS of the network come from the five quantiles in the scores (2.5, 16, 50, 84, "
            "97.5%): PIT by linear interpolation between them, CRPS = 2∫ρ<sub>τ</sub> dτ with the quantile "
            "function linear between them and extrapolated to τ = 0, 1 — an approximation. BPZ's come "
            "from its full p(z). Nominal coverage: 0.68 and 0.95.</p>"
            + table_html(_overall_rows(prow, ("n", "crps", "coverage68", "coverage95", "pit_ks")))
            + img_html(*plots["pit"]))
    return section("Probabilistic redshift", body)


def _star_section(m: dict, plots: dict, det: str) -> str:
    ckeys = ("n", "purity", "completeness", "specificity", "roc_auc", "balanced_accuracy", "accuracy", "tp", "fp",
             "fn", "tn")
    body = table_html(_overall_rows({f"network / {s}": v["stellarity"]["overall"] for s, v in m["network"].items()},
                                    ckeys))
    for src, v in m["network"].items():
        body += f"<h3>By {det} ({html.escape(src)} labels)</h3>" + table_html(
            _bins(v["stellarity"]["by_mag"], ("lo", "hi", "count", "purity", "completeness", "roc_auc",
                                             "balanced_accuracy", "accuracy")), index=False)
    body += img_html(*plots["star_galaxy"])
    return section("Star/galaxy", "<p>Star = positive class, predicted star when p_star ≥ 0.5. Bare "
                          "accuracy is not the figure of merit: a constant 'galaxy' answer scores the "
                          "majority-class share.</p>" + body)


def _mass_type_section(m: dict, det: str) -> str:
    """Every regression head of the head table (stellar mass, spectral type, …): overall and by
    detection magnitude."""
    rk = ("n", "bias", "nmad", "std", "rmse", "r2", "slope")
    heads = [h.name for h in HEADS if h.kind == "regression"]
    rrows = {f"{h.replace('_', ' ')} / {s}": v[h]["overall"] for h in heads for s, v in m["network"].items() if h in v}
    body = table_html(_overall_rows(rrows, rk))
    for h in heads:
        for s, v in m["network"].items():
            if h in v:
                body += f"<h3>{html.escape(h.replace('_', ' ').capitalize())} by {det} ({html.escape(s)})</h3>" + table_html(
                    _bins(v[h]["by_mag"], ("lo", "hi", "count", "bias", "nmad", "r2")), index=False)
    return section("Stellar mass and spectral type",
                          "<p>Galaxies; bias = median(pred − true), NMAD and std of pred − true.</p>" + body)


def _thesis_section(m: dict) -> str:
    th = m["thesis"]
    tt = pd.DataFrame(th["table"]).set_index("network")
    this = pd.DataFrame(th["this_model_test"])
    this.index.name = "metric (this model, test split, all objects)"
    runs = ", ".join(f"{k}: {v}" for k, v in th["runs"].items()) or "none found"
    body = ("<p>The thesis' published train/validation figures next to the latest <code>paper</code> and "
            "<code>default</code> training runs in the MLflow experiment (train/validation: the uncorrected "
            "network's score as the thesis computed it, from <code>results/results_table.csv</code>; test: "
            f"after slope correction, catalogue labels). Runs: {html.escape(runs)}.</p>"
            + table_html(tt) + "<h3>This model on the evaluated test objects</h3>" + table_html(this))
    return section("The thesis side by side", body)


def _definitions_section(d: dict) -> str:
    defs = ("<ul><li>ez = (z_pred − z_true)/(1 + z_true); bias = median(ez); σ_NMAD = 1.4826·median(|ez − "
            "median(ez)|); outlier fraction = share with |ez| &gt; 0.15; RAIL outliers: |ez| &gt; max(0.06, "
            "3σ_IQR), σ_IQR = IQR(ez)/1.349.</li><li>PIT = CDF(z_true) (uniform when calibrated; KS = distance "
            "to uniform); CRPS = ∫(F − H)² dz; coverage = share of z_true inside the 68%/95% interval.</li>"
            "<li>Purity = TP/(TP+FP), completeness = TP/(TP+FN), balanced accuracy = (TPR+TNR)/2, ROC AUC by "
            "ranks.</li><li>Regressions: r² = 1 − SS_res/SS_tot; NMAD of pred − true.</li><li>Test split: "
            f"{html.escape(d['test_split'])} (SplitMix64 of the ID), never used for training, early stopping or "
            "calibration.</li><li>Magnitude bins use the catalogue's detection-band magnitude (detected objects "
            "only).</li></ul>")
    return section("Definitions", defs)


def _sed_section(sed: dict | None, plots: dict, det: str) -> str:
    """The spectra section: the SED network against the mock's true SEDs and the photometry."""
    title = "Spectra (SED network)"
    if not sed:
        return section(title, "<p class='muted'>The model has no SED network (or could not be loaded).</p>")
    if "skipped" in sed:
        return section(title, f"<p class='muted'>{html.escape(sed['skipped'])}</p>")
    body = (f"<p>{fmt(sed['n_galaxies'])} test galaxies (galaxies by the truth). The network was trained on "
            f"<b>{html.escape(sed['label_source'])}</b> SED labels"
            + (" — the survey's best-fit template at the catalogue's spectral type, what real data allows; "
               "the <i>catalogue label</i> column scores that template itself against the truth, the floor "
               "emulation of those labels can reach" if sed["label_source"] == "catalogue" else "")
            + ". |Δf/f|: per galaxy, the median over rest-frame 3,000–9,000 Å of |f_pred/f_true − 1| "
              "(shapes normalised over that range); colours in AB mag, predicted minus true.</p>")
    body += table_html(pd.DataFrame(sed["reconstruction"]).set_index("galaxies"))
    if sed.get("synthetic"):
        body += ("<p>Synthetic observed magnitudes (the predicted SED at z_phot scaled to the measured "
                 f"{html.escape(det)}) against the truth's (the true SED at the true redshift, scaled to the "
                 f"noiseless {html.escape(det)}); the colour column leaves out the noise of the measured "
                 f"{html.escape(det)}, keeping the SED's and z_phot's share:</p>"
                 + table_html(pd.DataFrame(sed["synthetic"]), index=False))
    body += ("<p>χ² per detected band against the measured photometry: the predicted SED at z_phot and, as the "
             "reference, the true SED at the true redshift (photometric noise only gives a median χ² of 0.455).</p>"
             + table_html(pd.DataFrame(sed["chi2_bands"]), index=False))
    for key in ("sed_examples", "sed_colours", "sed_errors"):
        if key in plots:
            body += img_html(*plots[key])
    return section(title, body)


def write_report(ev: Evaluation, out: Path, title: str = "galaxy_spark evaluation") -> Path:
    """Write the report directory ``out`` (figures, metrics.json, report.html, the report manifest),
    replacing any previous one atomically; returns the path of report.html."""
    out = Path(out)
    with staged_replace(out) as staging:
        plots = make_plots(ev, staging)
        write_metrics_json(staging, ev.metrics)
        write_report_manifest(staging)
        (staging / "report.html").write_text(render_html(ev, plots, title), encoding="utf-8")
    return out / "report.html"


def console_lines(ev, report: Path, out, n_logged: int | None) -> list[str]:
    """The evaluation job's console summary: where the report is, the headline metrics, the
    network-vs-BPZ comparisons on the same galaxies and what was logged to MLflow."""
    import os

    name = os.path.basename(os.path.abspath(out))
    lines = []
    h = ev.metrics["headline"]
    det = ev.metrics["data"]["detection_band"]
    lines.append(f"report: {os.path.abspath(report)}")
    lines.append(f"metrics: {os.path.abspath(os.path.join(out, 'metrics.json'))}")
    lines.append(f"test split: {h['n_test']} objects; labels: {h['labels']}")
    lines.append("network: " + ", ".join(f"{k} {fmt(h.get(k))}" for k in (
        "redshift_sigma_nmad", "redshift_bias", "redshift_outlier_frac", "redshift_crps", "redshift_coverage68",
        "stellarity_balanced_accuracy", "stellarity_roc_auc", "stellar_mass_nmad", "spectral_type_nmad")))
    if h.get("bpz_sigma_nmad") is not None:
        lines.append(f"same {h['same_objects_n']} objects: network sigma_nmad {fmt(h['network_sigma_nmad_same_objects'])} "
              f"outliers {fmt(h['network_outlier_frac_same_objects'])} | BPZ sigma_nmad {fmt(h['bpz_sigma_nmad'])} "
              f"outliers {fmt(h['bpz_outlier_frac'])} | objects/s network {fmt(h.get('network_objects_per_s'))} "
              f"BPZ {fmt(h['bpz_objects_per_s'])} ratio {fmt(h['throughput_ratio'])}x")
    comparisons = ev.metrics.get("comparisons") or []
    if comparisons:
        lines.append("same galaxies, network vs BPZ (sigma_nmad / outlier fraction):")
        for r in comparisons:
            lines.append(f"  {r['comparison']:<52s} {det} {r['mag']:<9s} n {r['n']:>6d}  network "
                  f"{fmt(r['network_sigma_nmad'])} / {fmt(r['network_outlier_frac'])}  BPZ "
                  f"{fmt(r['bpz_sigma_nmad'])} / {fmt(r['bpz_outlier_frac'])}")
    sed = (ev.metrics.get("sed") or {}).get("summary")
    if sed:
        lines.append("SED network: " + ", ".join(f"{k} {fmt(v)}" for k, v in sed.items()))
    if n_logged is not None:
        lines.append(f"logged {n_logged} metrics and the report to MLflow run {ev.metrics['data']['model_run_id']} "
              f"(artifacts evaluation/{name}/)")
    return lines
