"""All configuration in one place: environment variables prefixed ``SPACEGROUP_`` (plus ``MP_API_KEY``).

Defaults work offline: data, artifacts and the SQLite registry live under ``SPACEGROUP_HOME``
(``~/.spacegroup`` unless set), which the user can move by setting that one variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration, read from the environment (and an optional ``.env`` file)."""

    model_config = SettingsConfigDict(env_prefix="SPACEGROUP_", env_file=".env", extra="ignore")

    home: Path = Field(Path.home() / ".spacegroup", description="Root for the registry, artifacts and plots.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the registry; default sqlite:///<home>/registry.sqlite."
    )
    artifacts_url: str | None = Field(
        None, description="Where model and dataset artifacts live: an fsspec URL (s3://bucket/prefix, gcs://..., with "
        "the matching fsspec backend installed) or a directory; default <home>/artifacts."
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")
    mp_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MP_API_KEY", "SPACEGROUP_MP_API_KEY"),
        description="Materials Project API key (needed only for the 'mp' source).",
    )
    mp_endpoint: str | None = Field(None, description="Materials Project API endpoint (default: mp-api's own).")
    webhook_secret: SecretStr | None = Field(None, description="HMAC secret for signed webhooks.")
    max_sites: int = Field(500, ge=1, description="Largest structure (sites in the cell) accepted as input.")
    max_pattern_points: int = Field(100_000, ge=50, description="Longest powder pattern accepted as input.")
    default_wavelength: str = Field("CuKa", description="Wavelength assumed for patterns given without one.")
    space_group_prior: str = Field("mp", description="Space-group prior of the answers: 'mp' (how often each space "
                                   "group occurs among Materials Project materials) or 'training' (as the model "
                                   "learnt it from its training set); see tasks/priors.py.")
    n_jobs: int = Field(0, ge=0, description="Worker processes for generation/featurisation; 0 = all cores.")
    frozen_eval_crystals: int = Field(300, ge=10, description="Crystals in the frozen synthetic evaluation set.")
    promotion_margin: float = Field(0.0, ge=0.0,
                                    description="SG top-1 gain a challenger must exceed over the champion.")
    refresh_source: str = Field("auto", description="Weekly refresh source: auto (mp with a key, else synthetic), "
                                "mp, synthetic, or a path to local files.")
    refresh_synthetic_crystals: int = Field(200, ge=1, description="Crystals a synthetic refresh adds.")
    drift_ks_threshold: float = Field(0.2, gt=0, description="Mean KS statistic of a feature group that counts as drift.")
    drift_psi_threshold: float = Field(0.25, gt=0, description="PSI of the space-group distribution that counts as drift.")
    drift_accuracy_drop: float = Field(0.10, gt=0, description="Fall in champion SG top-1 on new materials that counts "
                                       "as drift.")
    drift_sample: int = Field(300, ge=20, description="Materials sampled per side for feature drift.")
    api_max_body_bytes: int = Field(5_000_000, ge=1024, description="Largest HTTP request body accepted.")
    api_rate_limit_per_minute: int = Field(6000, ge=1, description="Requests per minute allowed to one API key.")
    api_max_batch_items: int = Field(10_000, ge=1, description="Most items in one batch job.")
    callback_allowed_hosts: str = Field("", description="Comma-separated hosts (host or host:port) that job "
                                        "callbacks may be sent to; empty means none.")
    batch_runner: str = Field("thread", description="How the API runs batch jobs and training: 'thread' (in the API "
                              "process) or 'prefect' (through the deployments; what `spacegroup up` uses).")
    webhook_tolerance_s: int = Field(300, ge=1, description="Age beyond which a signed webhook is refused.")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}; use DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("space_group_prior")
    @classmethod
    def _known_prior(cls, value: str) -> str:
        from tasks.priors import PRIORS

        if value not in PRIORS:
            raise ValueError(f"unknown space-group prior {value!r}; use {' or '.join(PRIORS)}")
        return value

    @property
    def allowed_callback_hosts(self) -> set[str]:
        return {h.strip().lower() for h in self.callback_allowed_hosts.split(",") if h.strip()}

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.sqlite'}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.artifacts_dir, self.reports_dir, self.cache_dir):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (call ``get_settings.cache_clear()`` after changing the environment)."""
    return Settings()
