"""De-identified analytics export (HIPAA Safe Harbor): rules and policy, transform, residual scanner."""
