"""Occurrences to place rooms for: `tests.support.factories.make_occurrences`."""
