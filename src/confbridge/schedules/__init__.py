"""Schedules as files: YAML that declares units, sites and meeting series."""
