"""Evaluation: metrics, the three comparisons, the BPZ baseline, the real-data check."""
