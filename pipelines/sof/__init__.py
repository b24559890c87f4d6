"""SQL on FHIR v2: ViewDefinitions compiled to vectorized Polars over FHIRPath collection tables.

`run_view(view, resources)` is the reference entry point (and the one the conformance suite uses).
"""

from pipelines.sof.engine import run_view
from pipelines.sof.errors import ViewDefinitionError

__all__ = ["ViewDefinitionError", "run_view"]
