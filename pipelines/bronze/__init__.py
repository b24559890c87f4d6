"""Landing → bronze: every input record is kept raw and lossless, or quarantined with a reason.

`ingest.ingest_landing` is the entry point; one reader module per input shape turns a landing file into
bronze rows and quarantine rows, and `ingest` writes them with the per-file accounting.
"""
