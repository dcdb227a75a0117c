"""Catalogue readers (one per format) into one canonical schema, and pure cleaning functions."""
