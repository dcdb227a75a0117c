"""The champion rule: which registered version serves as `@champion`.

A new version is compared with the current champion on four selection metrics measured on the
fixed selection region of ID-hash space (features.SELECTION_SPLIT, never trained on): redshift
σ_NMAD, star/galaxy balanced accuracy, type NMAD and mass NMAD. It becomes champion when it is
the first version, when it wins at least 3 of the 4 against numbers measured on the same labels
(spectroscopic or catalogue), or when promoted by hand (--promote); otherwise `@challenger`.
`decide_alias` is the rule (pure); `set_alias` applies it to the MLflow registry.
"""
from __future__ import annotations

import numpy as np

from galaxy_spark.model.ensemble import Ensemble
from galaxy_spark.train.heldout import field_metrics, spec_metrics
from galaxy_spark.log import get_logger

log = get_logger(__name__)

SELECTION_KEYS = {               # champion vs challenger: lower/higher is better
    "sel_redshift_sigma_nmad": "lower", "sel_stellarity_balanced_accuracy": "higher",
    "sel_spectral_type_nmad": "lower", "sel_stellar_mass_nmad": "lower",
}
FIRST = "first version"
PROMOTED = "--promote"
BETTER = "better on the selection metrics"
NOT_BETTER = "not better on the selection metrics"


def selection_metrics(ensemble: Ensemble, x, ok, targets, galaxy, spec_targets: dict | None = None) -> dict:
    """The four numbers champion and challenger are compared on (`SELECTION_KEYS`), for the rows
    `x` (features) / `ok` (scorable) of the selection region: type and mass against the catalogue
    `targets` on the `galaxy` rows; redshift and class against the spectroscopic sample when
    given (else the catalogue)."""
    pred = ensemble.predict_features(x, ok)
    fm = field_metrics(pred, targets, galaxy)
    out = {"sel_redshift_sigma_nmad": fm["redshift_sigma_nmad"],
           "sel_stellarity_balanced_accuracy": fm["stellarity_balanced_accuracy"],
           "sel_spectral_type_nmad": fm["spectral_type_nmad"], "sel_stellar_mass_nmad": fm["stellar_mass_nmad"]}
    if spec_targets is not None:
        sm = spec_metrics(pred, spec_targets)
        out["sel_redshift_sigma_nmad"] = sm.get("redshift_sigma_nmad", np.nan)
        out["sel_stellarity_balanced_accuracy"] = sm.get("stellarity_balanced_accuracy", np.nan)
    return out


def is_better(new: dict, old: dict) -> bool:
    """Better on at least 3 of the 4 selection metrics (a missing old metric counts as a win; a
    missing new one as a loss)."""
    wins = 0
    for k, direction in SELECTION_KEYS.items():
        a, b = new.get(k, np.nan), old.get(k, np.nan)
        if not np.isfinite(b) or (np.isfinite(a) and ((a < b) if direction == "lower" else (a > b))):
            wins += 1
    return wins >= 3


def decide_alias(new: dict, champion: dict | None, champion_labels: str, new_labels: str,
                 promote: bool) -> tuple[str, str]:
    """(alias, reason) for a new version with selection metrics `new` measured against
    `new_labels` ('spec' or 'catalogue'), given the champion's metrics (None: there is no
    champion) measured against `champion_labels`. Numbers measured on other labels are not
    comparable: a catalogue emulator never displaces a spectroscopically selected champion
    unless promoted."""
    if champion is None:
        return "champion", FIRST
    better = champion_labels == new_labels and is_better(new, champion)
    if better:
        return "champion", BETTER
    if promote:
        return "champion", PROMOTED
    return "challenger", NOT_BETTER


def set_alias(name: str, version: str | int, sel: dict, promote: bool, sel_labels: str = "catalogue") -> dict:
    """Apply `decide_alias` to registered model `name`, version `version` (MLflow registry):
    set its alias and print the decision. Returns {name, version, alias}."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(version)
    try:
        champ = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException:
        champ = None
    old, old_labels = None, "catalogue"
    if champ is not None:
        champ_run = client.get_run(champ.run_id).data
        old, old_labels = champ_run.metrics, champ_run.params.get("selection_labels", "catalogue")
    alias, reason = decide_alias(sel, old, old_labels, sel_labels, promote)
    client.set_registered_model_alias(name, alias, version)
    if alias == "challenger":
        log.info(f"registered {name} version {version} as challenger (champion v{champ.version} is better "
              f"on the selection metrics)")
    else:
        log.info(f"registered {name} version {version} as champion ({reason})")
    return {"name": name, "version": version, "alias": alias}
