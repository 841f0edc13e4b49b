"""Small objects on S3 written under their own name (the lock, its clock probe and break
file): one PUT each. (Sidecars, records and the marker are written as partials: multipart
uploads, `s3_upload.py`.)

S3 has no open file to write into: a small object is buffered and PUT whole.
`open_write` promises an exclusive create that fails at open (the lock's
`MemberLock._create` relies on FileExistsError there, and removes what it
created on any later error), so a name that is not a `.partial` is created
empty at open by a create-only PUT (`If-None-Match: *`, 412 → FileExistsError)
and filled by a plain PUT of the whole buffer at `sync`/`close`. A plain
`<name>.partial` (no attempt) is created at close, in one create-only PUT.

Between the empty create and the fill, a reader sees an empty object: the
lock reads that as "its holder is still writing it", as it does on a file
system. The fill PUT is not conditional (RGW 16 refuses the quoted
`If-Match` SDKs send); a run that wrongly took the lock over in that window
would be overwritten: the lock backend with compare-and-swap PUTs is the
design's next step (`archive/lock.py`).
"""

from __future__ import annotations

from collections.abc import Callable

from zfs_offsite.errors import StoreError
from zfs_offsite.remote.store import WriterBase
from zfs_offsite.values.partials import PARTIAL_SUFFIX

LIMIT = 16 * 1024 * 1024  # a small object bigger than this is a bug, not a sidecar

# put(data, create_only): one PUT of the whole object; FileExistsError on a create-only 412.
Put = Callable[[bytes, bool], None]


class SmallObjectWriter(WriterBase):
    """A small object, buffered and PUT whole; created exclusively (see the module)."""

    def __init__(self, path: str, put: Put, existing: bytes | None = None) -> None:
        self._path = path
        self._put = put
        self._buffer = bytearray(existing or b"")
        self._closed = False
        # A partial is created by its first PUT; any other name is created empty now. An
        # `existing` object (continued: a resume's checkpoints) is replaced by plain PUTs.
        self._created = existing is not None
        self._dirty = True
        if existing is None and not path.endswith(PARTIAL_SUFFIX):
            put(b"", True)
            self._created = True
            self._dirty = False

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, data: bytes | memoryview) -> int:
        if self._closed:
            raise ValueError(f"{self._path} is closed")
        self._buffer += data
        if len(self._buffer) > LIMIT:
            raise StoreError(f"{self._path}: a small object above {LIMIT >> 20} MiB")
        self._dirty = self._dirty or len(data) > 0
        return len(data)

    def sync(self) -> None:
        """PUT the whole buffer: the object holds every byte written when this returns."""
        if self._dirty:
            self._put(bytes(self._buffer), not self._created)
            self._created = True
            self._dirty = False

    def _release(self) -> None:
        self._closed = True
        self._buffer = bytearray()

    def abort(self) -> None:
        self._closed = True
        self._buffer = bytearray()
