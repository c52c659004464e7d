"""`[update]`: how a new release is staged and judged (README "Updates and rollback").

The same keys are read by the package's postinst with Debian's bare python3
(`gateway.releases.activate.policy_of`, tomllib, these defaults), before any venv exists.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from gateway.core.config_base import StrictModel, custom_error
from gateway.releases.updater import UpdatePolicy

_DEFAULT = UpdatePolicy()


class UpdateSection(StrictModel):
    probation_s: float = Field(
        _DEFAULT.probation_s,
        ge=10,
        le=86_400,
        description="A new release must run this long with READY, a broker connection and every "
        "component healthy, or it is rolled back.",
    )
    max_boots: int = Field(
        _DEFAULT.max_boots,
        ge=1,
        le=20,
        description="Starts of a new release allowed before it passed probation (a release that "
        "dies before it can report is rolled back by the boot guard after these).",
    )
    keep_releases: int = Field(
        _DEFAULT.keep_releases, ge=2, le=20, description="Releases kept under /opt/lintel/releases."
    )
    allowed_urls: list[str] = Field(
        default_factory=list,
        description="URL prefixes a remote `update` may fetch a package from (with its sha256); "
        "empty: only versions from the apt repository.",
    )
    max_package_mb: float = Field(400, gt=0, le=4096, description="Largest package fetched from a URL.")

    @field_validator("allowed_urls")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("https://", "http://")) or url.count("/") < 3:
                raise custom_error(
                    "not a URL prefix",
                    'a prefix with scheme, host and a path ending in "/", e.g. "https://updates.example/lintel/"',
                    got=url,
                )
        return value

    def policy(self) -> UpdatePolicy:
        return UpdatePolicy(
            probation_s=self.probation_s,
            max_boots=self.max_boots,
            keep_releases=self.keep_releases,
            allowed_urls=tuple(self.allowed_urls),
            max_package_bytes=int(self.max_package_mb * 1024 * 1024),
        )
