"""The bad-input corpus: crafted landing files and definition files with their expected outcomes."""
