"""One log format for every entry point; the level comes from --log-level or SPACEGROUP_LOG_LEVEL."""

from __future__ import annotations

import logging
import warnings

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    # third-party chatter a user cannot act on
    for noisy in ("pymatgen", "matplotlib", "numexpr", "urllib3", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    warnings.filterwarnings("ignore", module="pymatgen")
    # pymatgen's per-element notes (noble gases, superheavy elements), raised from functools' frames; NaN says it
    warnings.filterwarnings("ignore", message="No Pauling electronegativity", category=UserWarning)
    warnings.filterwarnings("ignore", message="No data available for", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
