"""Bronze layer: landing files → raw, lossless tables with a quarantine and a per-file ingest log."""
