"""Which datasets are members, and what each is called on the backup server.

Pure: takes the datasets `zfs get` reported and the source settings. A dataset
that cannot be a member (no usable directory name, or a name another dataset
maps to) is returned flagged with its one-line error, so that member fails
alone and the others are still backed up.

Coverage is by subtree: a selected dataset brings every dataset below it
(filesystems and zvols), each a member of its own named `parent~child`, because
`zfs send` of a dataset carries none of its children and an admin who picked
`tank/elabfs-nest` expects `tank/elabfs-nest/sub` to be in the archive too. A
dataset is left out only by the admin's word on the dataset itself
(`zfs-offsite:skip=on`, inherited by its children as ZFS inherits any user
property), and then it is returned in `Selection.excluded` with the reason, so
plan and status can list it: nothing under a selected dataset is skipped in
silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    kind: str = "filesystem"  # or "volume": a zvol is sent and received like a filesystem
    # This target's archive record on the dataset, `((property, archive id),)`, or () if
    # none (see zfs/record.py): the evidence of an archive that protect_base=off leaves.
    archives: tuple[tuple[str, str], ...] = ()

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
        kind=dataset.kind,
        archives=_archives(dataset),
    )


def _archives(dataset: Dataset) -> tuple[tuple[str, str], ...]:
    """The dataset's archive records as listed (`-`: not set, as `zfs get` says it)."""
    return tuple(
        sorted(
            (prop, value)
            for prop, value in dataset.properties.items()
            if prop.startswith(ARCHIVE_RECORD_PREFIX) and value not in ("", "-")
        )
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
        kind=dataset.kind,
        archives=_archives(dataset),
    )


# The opt-out: `zfs set zfs-offsite:skip=on pool/ds` leaves ds (and, by inheritance,
# its children) out of the backup; `zfs set zfs-offsite:skip=off pool/ds/keep` below
# it takes that one back in. A property, not a setting: it stays with the dataset
# through a rename, and `zfs get -r` shows it next to the data it concerns.
SKIP_PROPERTY = "zfs-offsite:skip"
# `zfs-offsite:archive-<target hash>=<archive id>`: set on a member after a file of it is
# committed to that target (zfs/record.py), read by discovery's one `zfs get`.
ARCHIVE_RECORD_PREFIX = "zfs-offsite:archive-"


@dataclass(frozen=True)
class Excluded:
    """A dataset under a selected one that is not backed up, and why (plan and status list it)."""

    dataset: str
    reason: str
    kind: str = "filesystem"


@dataclass(frozen=True)
class Selection:
    """The members to back up, and the datasets below them left out on purpose."""

    members: list[Member]
    excluded: list[Excluded] = field(default_factory=list)


def _within(name: str, top: str) -> bool:
    return name == top or name.startswith(top + "/")


def select(
    datasets: dict[str, Dataset],
    pool: str,
    prefix: str,
    explicit: list[str],
    select_property: str | None,
    scratch: str | None = None,
) -> Selection:
    """Members by explicit list, by user property `=on`, or by name prefix (the seed's way),
    each with every dataset below it; minus those the admin excluded, which are returned.

    Unusable datasets come back with `error` set (see `Member.error`); a listed
    dataset that does not exist is a ConfigError, a setting to fix. `scratch`
    (the drill's scratch dataset) and what is below it are never members: the
    drill creates and destroys them.
    """
    if explicit:
        missing = [d for d in explicit if d not in datasets]
        if missing:
            raise ConfigError(
                f"setting source.datasets: {missing[0]} does not exist in pool {pool}"
            )
        tops = list(explicit)
    elif select_property:
        tops = [n for n, d in datasets.items() if d.properties.get(select_property) == "on"]
    else:
        tops = [n for n in datasets if n.count("/") == 1 and n.split("/", 1)[1].startswith(prefix)]
    chosen: list[Dataset] = []
    excluded: list[Excluded] = []
    for name in sorted(n for n in datasets if any(_within(n, t) for t in tops)):
        dataset = datasets[name]
        reason = _why_excluded(dataset, select_property, scratch)
        if reason is None:
            chosen.append(dataset)
        else:
            excluded.append(Excluded(name, reason, dataset.kind))
    members = [_member(d, pool, prefix) for d in chosen]
    sharing: dict[str, list[str]] = {}
    for m in members:
        if m.error is None:
            sharing.setdefault(m.name, []).append(m.dataset)
    return Selection(
        [
            _rejected(
                datasets[m.dataset],
                f"datasets {' and '.join(sharing[m.name])} map to one member {m.name}: {_FIX}",
            )
            if m.error is None and len(sharing[m.name]) > 1
            else m
            for m in members
        ],
        excluded,
    )


def _why_excluded(dataset: Dataset, select_property: str | None, scratch: str | None) -> str | None:
    """Why a dataset inside a selected subtree is not backed up; None: it is."""
    if scratch is not None and _within(dataset.name, scratch):
        return (
            f"not backed up: {scratch} is the restore drill's scratch dataset "
            "(drill.scratch_dataset)"
        )
    if dataset.properties.get(SKIP_PROPERTY) == "on":
        return (
            f"not backed up: excluded by {SKIP_PROPERTY}=on (set on it or inherited; "
            f"zfs set {SKIP_PROPERTY}=off {dataset.name} takes it back in)"
        )
    value = dataset.properties.get(select_property) if select_property else None
    if select_property and value != "on":
        return (
            f"not backed up: excluded by {select_property}={value or '-'} below a selected dataset"
        )
    return None


def select_members(
    datasets: dict[str, Dataset],
    pool: str,
    prefix: str,
    explicit: list[str],
    select_property: str | None,
) -> list[Member]:
    """The members of `select` (those left out are dropped: callers that list them use `select`)."""
    return select(datasets, pool, prefix, explicit, select_property).members


# The drill receives member `m` into `<scratch>/<scratch_component(m)>`, one dataset
# component. A nested member's `~` is no ZFS name character ("cannot receive: invalid
# name"), so it is written `::`, and a `:` of the name `:.`; no other character
# changes, so `alice` stays `alice` and no two members share a scratch dataset.
_SCRATCH_ESCAPES = {":": ":.", NESTED_SEPARATOR: "::"}


def scratch_component(member: str) -> str:
    """The drill's scratch dataset name component for `member` (a valid ZFS name, reversible)."""
    return "".join(_SCRATCH_ESCAPES.get(c, c) for c in member)


def member_of_scratch(component: str) -> str:
    """The member whose drill scratch component is `component` (inverse of scratch_component)."""
    out, i = [], 0
    back = {v: k for k, v in _SCRATCH_ESCAPES.items()}
    while i < len(component):
        pair = component[i : i + 2]
        if component[i] == ":":
            if pair not in back:
                raise ValueError(f"{component!r} is not a drill scratch name")
            out.append(back[pair])
            i += 2
        else:
            out.append(component[i])
            i += 1
    return "".join(out)
