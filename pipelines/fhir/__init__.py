"""FHIR R4 facts the readers need: resource types and where a resource names its patient."""
