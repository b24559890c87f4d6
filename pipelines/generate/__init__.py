"""Synthetic landing data for patient-insights: FHIR EHR exports, device feeds, service-center
conversations, with a ground truth (identities, injected defects, per-file counts) next to them.

See `pipelines.generate.landing` for the layout and the decisions made where the contract is silent.
"""

from pipelines.generate.bulk_writer import ROTATE_LINES
from pipelines.generate.landing import DEFAULT_AS_OF, MARKER, GenerationSummary, generate_landing

__all__ = ["DEFAULT_AS_OF", "MARKER", "ROTATE_LINES", "GenerationSummary", "generate_landing"]
