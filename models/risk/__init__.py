"""Risk scoring: point-in-time features, outcomes, clinical baselines (LACE, Charlson), a calibrated
scikit-learn model chosen by temporal validation, local explanations, the model registry and cards."""
