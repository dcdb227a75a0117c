"""Baselines the learned models are compared against (template-fitting photo-z)."""
from galaxy_spark.fitting.bpz import BPZModel, fit_bpz

__all__ = ["BPZModel", "fit_bpz"]
