"""HEDIS-aligned care-gap measures (not NCQA-certified): declarative definitions, value sets, engine."""
