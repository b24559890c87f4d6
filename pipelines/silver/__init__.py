"""Silver: typed tables flattened from bronze FHIR by the ViewDefinitions in data_contracts/views."""
