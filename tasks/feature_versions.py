"""The feature-set versions this code produces (a model refuses features of another version).

Kept apart from ``tasks.features`` so that the registry can check a champion's version without importing the
featurizers (scipy, numba)."""

XRD_FEATURE_VERSION = "xrd-qpeaks-index-5"
FORMULA_FEATURE_VERSION = "formula-magpie-stoich-pettifor-2"  # 2: prototype columns (tasks.prototypes)

FEATURE_VERSIONS = {"xrd": XRD_FEATURE_VERSION, "formula": FORMULA_FEATURE_VERSION}
