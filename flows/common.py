"""What every flow opens first: settings, the migrated registry engine and the artifact store."""

from __future__ import annotations


def registry():
    """A fresh registry gets the shipped models as champions, so every flow has something to compare with."""
    from storage.artifacts import default_store
    from storage.bootstrap import bootstrap_pretrained
    from storage.engine import get_engine
    from tasks.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    engine, store = get_engine(), default_store()
    bootstrap_pretrained(engine, store)
    return settings, engine, store
