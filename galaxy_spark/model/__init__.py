"""Networks from presets, the ensemble (one p(z) read-out), its pyfunc wrapper, MLflow tracking."""
