"""Which datasets are members, and what each is called on the backup server.

Pure: takes the datasets `zfs get` reported and the source settings. A dataset
that cannot be a member (no usable directory name, or a name another dataset
maps to) is returned flagged with its one-line error, so that member fails
alone and the others are still backed up.
"""

from __future__ import annotations

from dataclasses import dataclass

from zfs_offsite.archive.names import LOST_AND_FOUND, NESTED_SEPARATOR, is_member_name
from zfs_offsite.errors import ConfigError
from zfs_offsite.zfs.model import Bookmark, Dataset, Snapshot, is_natively_encrypted


@dataclass(frozen=True)
class Member:
    """One backed-up dataset: directory `name/`, files `dataset_part@snap...`."""

    name: str
    dataset: str
    dataset_part: str
    snapshots: tuple[Snapshot, ...]
    bookmarks: tuple[Bookmark, ...] = ()
    # Why this dataset cannot be backed up; `name` is then the dataset's name, which
    # is never a directory on the backup server (it has a `/`).
    error: str | None = None
    encryption: str | None = None  # the dataset's `encryption` (None: this ZFS has none)

    @property
    def natively_encrypted(self) -> bool:
        return is_natively_encrypted(self.encryption)

    @property
    def newest(self) -> Snapshot | None:
        return self.snapshots[-1] if self.snapshots else None


_FIX = "rename the dataset, or leave it out by listing the datasets to back up in source.datasets"


def _member(dataset: Dataset, pool: str, prefix: str) -> Member:
    relative = dataset.name.removeprefix(pool + "/").replace("/", NESTED_SEPARATOR)
    name = relative.removeprefix(prefix) if relative.startswith(prefix) else relative
    if not name or not is_member_name(name):
        why = (
            f" (verify and prune leave hidden names and {LOST_AND_FOUND} alone)"
            if (name.startswith(".") or name == LOST_AND_FOUND) and name not in {".", ".."}
            else ""
        )
        return _rejected(
            dataset, f"dataset {dataset.name} gives no usable member name ({name!r}){why}: {_FIX}"
        )
    return Member(
        name,
        dataset.name,
        relative,
        dataset.snapshots,
        dataset.bookmarks,
        encryption=dataset.encryption,
    )


def _rejected(dataset: Dataset, error: str) -> Member:
    return Member(
        dataset.name,
        dataset.name,
        "",
        dataset.snapshots,
        dataset.bookmarks,
        error,
        encryption=dataset.encryption,
    )


def select_members(
    datasets: dict[str, Dataset],
    pool: str,
    prefix: str,
    explicit: list[str],
    select_property: str | None,
) -> list[Member]:
    """Members by explicit list, by user property `=on`, or by name prefix (the seed's way).

    Unusable datasets come back with `error` set (see `Member.error`); a listed
    dataset that does not exist is a ConfigError, a setting to fix.
    """
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
    sharing: dict[str, list[str]] = {}
    for m in members:
        if m.error is None:
            sharing.setdefault(m.name, []).append(m.dataset)
    return [
        _rejected(
            datasets[m.dataset],
            f"datasets {' and '.join(sharing[m.name])} map to one member {m.name}: {_FIX}",
        )
        if m.error is None and len(sharing[m.name]) > 1
        else m
        for m in members
    ]
