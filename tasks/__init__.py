"""The work of ml-space-group: plain, typed functions and classes (no Prefect, no Flask)."""

__version__ = "0.1.0"
