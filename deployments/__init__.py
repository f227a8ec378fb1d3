"""Schedules, serving and the ``spacegroup`` command-line entry."""
