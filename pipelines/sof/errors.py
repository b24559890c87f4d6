"""Errors of the SQL on FHIR engine."""

from __future__ import annotations


class ViewDefinitionError(ValueError):
    """A ViewDefinition (or a FHIRPath expression in it) is invalid, or evaluating it broke a rule of
    the specification (e.g. a non-collection column produced several values)."""
