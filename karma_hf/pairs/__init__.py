"""Preference pairs: build options (config), decisions, writing, the build report, the builder."""
