"""Studies that run whole pipelines on top of the product: the band-count study (one simulated
population through several survey files), the real-data check (real rows through ingest and a
registered model) and the mock validation (the mock against real rows)."""
