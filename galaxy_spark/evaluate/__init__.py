"""Evaluation: metrics, the three comparisons (emulation, spectroscopic, truth), the BPZ baseline."""
