"""Silver layer: ViewDefinition tables per patient bucket, rebuilt from bronze."""
