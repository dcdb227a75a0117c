"""The champion rule (galaxy_spark/train/champion.py), without MLflow: is_better and decide_alias."""
import math

import pytest

from galaxy_spark.train.champion import BETTER, FIRST, NOT_BETTER, PROMOTED, SELECTION_KEYS, decide_alias, is_better

OLD = {"sel_redshift_sigma_nmad": 0.05, "sel_stellarity_balanced_accuracy": 0.90,
       "sel_spectral_type_nmad": 1.0, "sel_stellar_mass_nmad": 0.20}


def _move(base: dict, better: set, worse: set = frozenset()) -> dict:
    """`base` improved on the keys in `better` and worsened on those in `worse`."""
    out = dict(base)
    for k, direction in SELECTION_KEYS.items():
        step = 0.01 if direction == "higher" else -0.01
        if k in better:
            out[k] = base[k] + step
        elif k in worse:
            out[k] = base[k] - step
    return out


KEYS = list(SELECTION_KEYS)


def test_better_means_three_of_four():
    assert is_better(_move(OLD, set(KEYS)), OLD)
    assert is_better(_move(OLD, set(KEYS[:3]), {KEYS[3]}), OLD)
    assert not is_better(_move(OLD, set(KEYS[:2]), set(KEYS[2:])), OLD)
    assert not is_better(OLD, OLD)                             # ties are no wins
    assert not is_better(_move(OLD, set(), set(KEYS)), OLD)


def test_missing_metrics():
    # a metric the champion lacks (or NaN) counts as a win for the newcomer …
    old = {k: v for k, v in OLD.items() if k != KEYS[0]} | {KEYS[1]: math.nan}
    assert is_better(_move(OLD, {KEYS[2]}, {KEYS[3]}), old)
    # … one the newcomer lacks as a loss
    new = _move(OLD, set(KEYS))
    new[KEYS[0]] = math.nan
    del new[KEYS[1]]
    assert not is_better(new, OLD)


@pytest.mark.parametrize("new, champion, champ_labels, new_labels, promote, expected", [
    (OLD, None, "catalogue", "catalogue", False, ("champion", FIRST)),
    (_move(OLD, set(KEYS)), OLD, "catalogue", "catalogue", False, ("champion", BETTER)),
    (_move(OLD, set(KEYS)), OLD, "catalogue", "catalogue", True, ("champion", BETTER)),
    (_move(OLD, set(), set(KEYS)), OLD, "catalogue", "catalogue", False, ("challenger", NOT_BETTER)),
    (_move(OLD, set(), set(KEYS)), OLD, "catalogue", "catalogue", True, ("champion", PROMOTED)),
    # better numbers measured on other labels are not comparable: a catalogue emulator never
    # displaces a spectroscopically selected champion (nor the reverse) unless promoted
    (_move(OLD, set(KEYS)), OLD, "spec", "catalogue", False, ("challenger", NOT_BETTER)),
    (_move(OLD, set(KEYS)), OLD, "catalogue", "spec", False, ("challenger", NOT_BETTER)),
    (_move(OLD, set(KEYS)), OLD, "spec", "catalogue", True, ("champion", PROMOTED)),
    (_move(OLD, set(KEYS)), OLD, "spec", "spec", False, ("champion", BETTER)),
])
def test_alias_decision(new, champion, champ_labels, new_labels, promote, expected):
    assert decide_alias(new, champion, champ_labels, new_labels, promote) == expected
