"""Settings with one section's values changed, for tests that call a job directly.

Jobs take `Settings` (docs/architecture.md, "One job API style"); a test that
needs another policy, lock wait or drill scratch dataset copies the fixture's
settings with that one section changed. `model_copy` does not validate, so a
test may also set a value the settings refuse (a zero stale age, say).
"""

from __future__ import annotations

from zfs_offsite.settings import Settings


def with_section(settings: Settings, section: str, **values: object) -> Settings:
    """`settings` with `values` set in `settings.<section>`, everything else as it was."""
    changed = getattr(settings, section).model_copy(update=values)
    return settings.model_copy(update={section: changed})
