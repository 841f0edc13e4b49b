"""The completion protocol: a backup file reaches its final name only when it is whole.

1. The stream was written to `<file>.<attempt>.partial`, every write
   acknowledged and flushed (the pipeline).
2. Both sidecars are written the same way as partial files and checked.
3. The writer lock is checked to be ours, and the run not cancelled.
4. The sidecars are renamed into place, then the backup file: its rename is
   the commit. Before it, a reader sees at most sidecars without a file,
   which count for nothing (prune removes them under the same lock).
5. The upload's resume checkpoints (`<file>.<attempt>.ckpt.partial`) go.
Any failure removes what this attempt wrote, checkpoints first.
"""

from __future__ import annotations

from collections.abc import Callable

from zfs_offsite.archive.model import Sidecar, checksum_line
from zfs_offsite.archive.names import checksum_name, corrupt_mark_name, metadata_name
from zfs_offsite.errors import DiskFullError
from zfs_offsite.remote.store import Store, disk_full, remove_quietly, write_new_file


def commit_backup(
    store: Store,
    member: str,
    filename: str,
    data_partial: str,
    sidecar: Sidecar,
    *,
    before_commit: Callable[[], None] = lambda: None,
    checkpoints: str = "",
) -> None:
    """Write the sidecars, then move sidecars and file to their final names (file last).

    `checkpoints` names the partial's checkpoint file, if the upload wrote one:
    it has served its purpose once the file is committed, or is void if not."""
    final = f"{member}/{filename}"
    sidecars = {
        f"{member}/{checksum_name(filename)}": checksum_line(sidecar.sha256, filename),
        f"{member}/{metadata_name(filename)}": sidecar.to_json(),
    }
    partials: dict[str, str] = {}
    placed: list[str] = []
    try:
        for path, data in sidecars.items():
            partials[path] = write_new_file(store, path, data)
        before_commit()
        # A mark left by a file of the same name that was deleted by hand is not ours.
        store.remove(f"{member}/{corrupt_mark_name(filename)}")
        for path, partial in partials.items():
            store.rename(partial, path)
            placed.append(path)
        store.rename(data_partial, final)
    except BaseException as exc:
        for path in [checkpoints, *partials.values(), *placed, data_partial]:
            if path:
                remove_quietly(store, path)
        if isinstance(exc, DiskFullError):
            size = sidecar.stored_bytes + sum(len(d) for d in sidecars.values())
            needed = f"about {size / 1e6:.0f} MB needed"
            raise disk_full(store, exc, final, needed=needed) from exc
        raise
    if checkpoints:
        remove_quietly(store, checkpoints)
