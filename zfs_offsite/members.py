"""Which datasets are members, and what each is called on the backup server.

Pure: takes the datasets `zfs get` reported and the source settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from zfs_offsite.errors import ConfigError
from zfs_offsite.naming import is_safe_component
from zfs_offsite.zfs import Dataset, Snapshot

NESTED_SEPARATOR = "~"  # not allowed in ZFS names, so the mapping cannot collide


@dataclass(frozen=True)
class Member:
    """One backed-up dataset: directory `name/`, files `dataset_part@snap...`."""

    name: str
    dataset: str
    dataset_part: str
    snapshots: tuple[Snapshot, ...]
    bookmarks: tuple[Snapshot, ...] = ()

    @property
    def newest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None


def _member(dataset: Dataset, pool: str, prefix: str) -> Member:
    relative = dataset.name.removeprefix(pool + "/").replace("/", NESTED_SEPARATOR)
    name = relative.removeprefix(prefix) if relative.startswith(prefix) else relative
    if not name or not is_safe_component(name):
        raise ConfigError(f"dataset {dataset.name} gives no usable member name: rename it")
    return Member(name, dataset.name, relative, dataset.snapshots, dataset.bookmarks)


def select_members(
    datasets: dict[str, Dataset],
    pool: str,
    prefix: str,
    explicit: list[str],
    select_property: str | None,
) -> list[Member]:
    """Members by explicit list, by user property `=on`, or by name prefix (the seed's way)."""
    if explicit:
        missing = [d for d in explicit if d not in datasets]
        if missing:
            raise ConfigError(
                f"setting source.datasets: {missing[0]} does not exist in pool {pool}"
            )
        chosen = [datasets[d] for d in explicit]
    elif select_property:
        chosen = [d for d in datasets.values() if d.properties.get(select_property) == "on"]
    else:
        chosen = [
            d
            for d in datasets.values()
            if d.name.count("/") == 1 and d.name.split("/", 1)[1].startswith(prefix)
        ]
    members = [_member(d, pool, prefix) for d in sorted(chosen, key=lambda d: d.name)]
    seen: dict[str, str] = {}
    for m in members:
        if m.name in seen:
            raise ConfigError(f"datasets {seen[m.name]} and {m.dataset} map to member {m.name}")
        seen[m.name] = m.dataset
    return members
