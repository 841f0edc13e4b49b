"""An S3 bucket as the target (issue 22; docs/explanation/object-storage-design.md).

Keys are `PREFIX/<path>` with exactly the file layout's names, so an archive copied
between an SFTP server and a bucket (`rclone copy`) reads the same either way.
There are no directories: a listing is `ListObjectsV2` with `Delimiter='/'`, its
common prefixes the directories, and the root "exists" when anything is under
PREFIX/. A missing bucket is the unmounted disk's twin: refused in one line,
never created. S3 cannot say a quota, so `space` is None.

Credentials come from the AWS chain (environment, shared credentials file and
profile) through boto3, or as `S3Keys` read from a named Prefect block
(`s3_credentials.py`) handed to the session; no message here names a key.
Every failure of the store becomes one typed line naming the fix: wrong
credentials, a missing bucket, a skewed clock (permanent: a person must act),
the endpoint down or a 5xx (transient: another attempt may succeed).

Writing maps the Store protocol onto S3 here, so the core's order rules
(`archive/commit.py`) hold unchanged. A partial `<final>.<attempt>.partial`
(a stream, a sidecar, a record, the marker) is a multipart upload of `<final>`
(`s3_upload.py`): invisible until its "rename", the completion, checked by a
HEAD; its size is the parts' (ListParts); its removal aborts it. An upload of
another process (a killed run) is listed as `<final>.<token>.partial`, token
from its UploadId, so the core's rules for leftover partials (removed before
the next upload of the file, pruned past `retention.stale_partial_hours`)
apply unchanged. Any other name (the lock, the clock probe) is a small object
created exclusively (`s3_small.py`); its rename a server-side copy onto the
destination, then the source's delete. A bucket quota met is a
`QuotaFullError`: one line, permanent.

Resume (the design's "Resume: ListParts and our checkpoints"): an upload's
checkpoint file `<final>.<attempt>.ckpt.partial` is a small object replaced
whole at each checkpoint, stored as `<final>.<token>.ckpt.partial` with the
token of its upload's UploadId, so another process finds it beside the upload
it lists as `<final>.<token>.partial`. `open_append` continues that upload at a
part boundary, keeping the parts before it; `check_parts` gives the stored check
per part (ETag = MD5, and size), since an unfinished upload cannot be read back.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from zfs_offsite.errors import IntegrityError, PermanentError, StoreError
from zfs_offsite.remote.s3_credentials import S3Keys
from zfs_offsite.remote.s3_lock import S3Lock
from zfs_offsite.remote.s3_parts import PartSchedule, plan_parts, resumed_schedule
from zfs_offsite.remote.s3_quickack import quick_acks
from zfs_offsite.remote.s3_retention import Retention, Wanted
from zfs_offsite.remote.s3_small import SmallObjectWriter
from zfs_offsite.remote.s3_upload import (
    MultipartWriter,
    PartCheck,
    StoredPart,
    UploadState,
)
from zfs_offsite.remote.store import QuotaFullError
from zfs_offsite.values.entries import Space, StoreEntry
from zfs_offsite.values.partials import (
    CHECKPOINT_MARK,
    PARTIAL_SUFFIX,
    checkpoint_name,
    is_checkpoint,
    split_partial,
)

if TYPE_CHECKING:
    from botocore.response import StreamingBody

T = TypeVar("T")
log = logging.getLogger(__name__)
Addressing = Literal["auto", "path", "virtual"]

ATTEMPT_METADATA = "zfs-offsite-attempt"  # on each upload: whose completion an object is
PIECE = 1024 * 1024  # bytes per read of a streaming GET; one more is read ahead
_NOT_FOUND = ("404", "NoSuchKey", "NotFound", "NoSuchUpload")
_CREDENTIALS_FIX = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or target.s3.profile) to a key pair "
    "the store knows, or those of the block target.s3.credentials_block names"
)


class S3Store:
    """Objects below `s3://bucket/prefix`."""

    # Checkpoints are objects replaced whole; an earlier attempt's upload is continued by
    # its UploadId after its parts are checked (`open_append`, `check_parts`).
    resumes_uploads = True
    # No disk to mount: a prefix exists only while objects are under it (`archive/identity.py`).
    absent_root_question = "are the bucket and prefix right?"

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: Addressing = "auto",
        profile: str | None = None,
        keys: S3Keys | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        where = f" at {endpoint_url}" if endpoint_url else ""
        self.description = f"s3://{bucket}/{self.prefix}{where}"
        self._endpoint = endpoint_url or "the default AWS endpoint"
        # The client's type comes from the boto3 stubs' overloads (types-boto3-s3, dev only).
        self._client = _session(profile, keys).client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or (keys.region if keys else None),
            config=_config(endpoint_url, addressing_style, timeout),
        )
        quick_acks(self._client)  # RGW's small answers in 2 ms, not 45 (s3_quickack.py)
        self._reader: ThreadPoolExecutor | None = None
        self._uploads: dict[str, UploadState] = {}  # this process's uploads, by partial path
        # The token (`upload_token`) of each upload this process wrote, by partial path: its
        # checkpoint object's name. Kept after the completion: the commit removes it after.
        self._tokens: dict[str, str] = {}
        self._endpoint_url = endpoint_url or ""
        self._retention: Retention | None = None

    # ------------------------------------------------------------------ keys

    def _key(self, path: str) -> str:
        """The object key of `path`; a checkpoint file is named after its upload's token."""
        return self._plain_key(self._checkpoint_of_upload(path))

    def _plain_key(self, path: str) -> str:
        return "/".join(part for part in (self.prefix, path.strip("/")) if part)

    def _checkpoint_of_upload(self, path: str) -> str:
        """`<final>.<attempt>.ckpt.partial` of an upload of this process as
        `<final>.<token>.ckpt.partial`: the name another process finds beside the upload."""
        if not is_checkpoint(path):
            return path
        partial = path[: -len(CHECKPOINT_MARK + PARTIAL_SUFFIX)] + PARTIAL_SUFFIX
        split = split_partial(partial)
        token = self._tokens.get(partial.strip("/"))
        if split is None or token is None:
            return path
        return checkpoint_name(f"{split[0]}.{token}{PARTIAL_SUFFIX}")

    def _shown_checkpoints(self) -> dict[str, str]:
        """Key -> the key of the name this process knows it by, for its uploads' checkpoints."""
        return {
            self._key(checkpoint_name(partial)): self._plain_key(checkpoint_name(partial))
            for partial in self._tokens
        }

    def _dir_prefix(self, path: str) -> str:
        key = self._key(path)
        return key + "/" if key else ""

    # ------------------------------------------------------------------ reading

    def listdir(self, path: str) -> list[StoreEntry]:
        """Objects and "directories" (common prefixes) right below `path`; [] if none."""
        start = self._dir_prefix(path)
        entries: list[StoreEntry] = []
        shown = self._shown_checkpoints()
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start, Delimiter="/"
        )
        for page in self._call(f"list {start or '/'}", lambda: list(pages)):
            for common in page.get("CommonPrefixes", []):
                name = common.get("Prefix", "")[len(start) :].rstrip("/")
                if name:
                    entries.append(StoreEntry(name, 0, 0.0, is_dir=True))
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                name = shown.get(key, key)[len(start) :]
                if name:  # the key `start` itself: a console's "folder" object, not a file
                    modified = item.get("LastModified")
                    mtime = modified.timestamp() if modified else 0.0
                    entries.append(StoreEntry(name, item.get("Size", 0), mtime))
        for key, upload_id, initiated in self._list_uploads(start):
            name = self._partial_of(key, upload_id)[len(start) :]
            entries.append(StoreEntry(name, self._uploaded(key, upload_id), initiated))
        return sorted(entries, key=lambda e: e.name)

    def stat(self, path: str) -> StoreEntry | None:
        """HEAD of the object; a key with objects below it is a directory; None if neither.

        A partial is its multipart upload: the bytes of its parts (ListParts), the
        store's truth, so the size checks of the core run on what was stored."""
        key = self._key(path)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if split_partial(name) is not None:
            upload = self._find_upload(path)
            if upload is None:
                return None
            return StoreEntry(name, self._uploaded(*upload[:2]), upload[2])
        if key and not key.endswith("/") and path.strip("/"):
            try:
                head = self._call(
                    f"look at {key}", lambda: self._client.head_object(Bucket=self.bucket, Key=key)
                )
            except FileNotFoundError:
                pass
            else:
                modified = head.get("LastModified")
                return StoreEntry(
                    name, head.get("ContentLength", 0), modified.timestamp() if modified else 0.0
                )
        start = self._dir_prefix(path)
        found = self._call(
            f"list {start or '/'}",
            lambda: self._client.list_objects_v2(Bucket=self.bucket, Prefix=start, MaxKeys=1),
        )
        if found.get("KeyCount", 0) or found.get("Contents"):
            return StoreEntry(name, 0, 0.0, is_dir=True)
        return None

    def open_read(self, path: str) -> _ObjectReader:
        """A small object (sidecars, records) as one GET."""
        key = self._key(path)
        answer = self._call(
            f"read {key}", lambda: self._client.get_object(Bucket=self.bucket, Key=key)
        )
        return _ObjectReader(answer["Body"])

    def read_chunks(self, path: str) -> Iterator[bytes]:
        """The whole object as one streaming GET (as `rclone cat` reads it), read in PIECE
        bytes by a read-ahead thread, so the network read overlaps the caller's work.

        One GET reads one object version: an object replaced meanwhile is never a mix of
        two. A body that ends short of its Content-Length is a StoreError (the restore
        then stops and `--resume` picks it up), never a short stream.
        """
        key = self._key(path)
        answer = self._call(
            f"read {key}", lambda: self._client.get_object(Bucket=self.bucket, Key=key)
        )
        size, body = answer.get("ContentLength", 0), answer["Body"]
        if self._reader is None:
            self._reader = ThreadPoolExecutor(1, thread_name_prefix="s3-read-ahead")
        reader = self._reader
        offset = 0

        def fetch() -> bytes:
            return self._call(f"read {key} from byte {offset}", lambda: body.read(PIECE))

        pending: Future[bytes] | None = reader.submit(fetch)
        try:
            while pending is not None:
                chunk = pending.result()
                if not chunk:
                    pending = None
                    break
                offset += len(chunk)
                pending = reader.submit(fetch)
                yield chunk
            if offset != size:
                raise StoreError(f"read {key}: {offset} bytes came for {size} stored")
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(Exception):
                    pending.result()
            body.close()

    def space(self, path: str) -> Space | None:
        """None: S3 cannot say a quota; a full bucket shows only as QuotaExceeded."""
        return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # ------------------------------------------------------------------ writing

    def makedirs(self, path: str) -> None:
        """Nothing to create (no directories on S3); a missing bucket is refused, never made."""
        self._check_bucket()

    def create_root(self) -> None:
        """Nothing to create but the bucket, which this tool never creates."""
        self._check_bucket()

    def open_write(self, path: str) -> SmallObjectWriter | MultipartWriter:
        """A partial `<final>.<attempt>.partial`: a multipart upload of `<final>`
        (`s3_upload.py`); any other name a small object created exclusively
        (FileExistsError if it exists; `s3_small.py`)."""
        if (split := split_partial(path.rsplit("/", 1)[-1])) is not None:
            return self._start_upload(path, split[1])
        key = self._key(path)

        def put(data: bytes, create_only: bool) -> None:
            if create_only:
                self._call(
                    f"create {key}",
                    lambda: self._client.put_object(
                        Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*"
                    ),
                )
            else:
                self._call(
                    f"write {key}",
                    lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data),
                )

        return SmallObjectWriter(path, put)

    def open_sized(
        self, path: str, expected_size: int | None
    ) -> SmallObjectWriter | MultipartWriter:
        """`open_write`, told the stream's size estimate (None: unknown): a partial's upload
        plans its part sizes from it (`remote/s3_parts.py`); other names ignore it."""
        if (split := split_partial(path.rsplit("/", 1)[-1])) is not None:
            return self._start_upload(path, split[1], expected_size)
        return self.open_write(path)

    def open_append(self, path: str, offset: int) -> SmallObjectWriter | MultipartWriter:
        """Continue an earlier attempt's file after its first `offset` bytes.

        A partial's multipart upload goes on from the part after `offset` (a part
        boundary), keeping the stored parts before it; parts it held after that are
        replaced as they are sent again, or left out of the completion. Any other name
        (a checkpoint object) is read, cut to `offset` and PUT whole at each `sync`."""
        if split_partial(path.rsplit("/", 1)[-1]) is not None:
            return self._continue_upload(path, offset)
        key = self._key(path)
        with self.open_read(path) as handle:
            data = handle.read()
        if len(data) < offset:
            raise IntegrityError(
                f"{key} holds {len(data)} bytes, fewer than the {offset} to resume after"
            )

        def put(body: bytes, create_only: bool) -> None:
            self._call(
                f"write {key}",
                lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=body),
            )

        return SmallObjectWriter(path, put, existing=data[:offset])

    def _continue_upload(self, path: str, offset: int) -> MultipartWriter:
        """The upload goes on with the part sizes it started with, read from its stored
        part 1 (`resumed_schedule`): never from this run's estimate, which may differ."""
        found = self._find_upload(path)
        if found is None:
            raise FileNotFoundError(2, f"{self.description}: no upload of {path} to continue")
        key, upload_id, _ = found
        stored = {p.number: p for p in self._stored_parts(key, upload_id)}
        parts = self._schedule_of(stored.get(1), path) if offset else plan_parts(None)
        kept = parts.parts_before(offset)
        if kept is None:
            raise PermanentError(
                f"{path}: {offset} bytes do not end a part: an upload is continued only "
                "where a part ends"
            )
        missing = [n for n in range(1, kept + 1) if n not in stored]
        held = sum(stored[n].size for n in range(1, kept + 1) if n in stored)
        if missing or held != offset:
            raise IntegrityError(
                f"{key}: the upload holds {held} bytes in parts 1-{kept}, fewer than the "
                f"{offset} to resume after"
            )
        state = UploadState(key, upload_id, written=offset, acknowledged=offset, resumed=True)
        for number in range(1, kept + 1):
            etag = stored[number].etag
            state.parts.append((number, etag, bytes.fromhex(etag.strip('"'))))
        self._uploads[path] = state
        self._tokens[path.strip("/")] = upload_token(upload_id)
        return MultipartWriter(
            state, self._part_sender(state), self.description, first=kept + 1, parts=parts
        )

    def _schedule_of(self, first: StoredPart | None, path: str) -> PartSchedule:
        """The part sizes an upload started with, from its stored part 1."""
        parts = resumed_schedule(first.size) if first is not None else None
        if parts is None:
            held = f"holds {first.size} bytes" if first is not None else "is not stored"
            raise PermanentError(
                f"{path}: its part 1 {held}, no first part this version cuts: "
                "the upload cannot be continued (it starts afresh)"
            )
        return parts

    def continues_at(self, path: str) -> Callable[[int], bool]:
        """Whether the partial's upload can be continued after `offset` bytes: where a part
        of its own schedule ends. Parts of 128 MiB and more span several 64 MiB
        checkpoints, and a checkpoint inside a part was recorded before its part was
        stored: a resume goes back to the last checkpoint at a part's end."""
        found = self._find_upload(path)
        stored = self._stored_parts(*found[:2]) if found is not None else []
        first = next((p for p in stored if p.number == 1), None)
        parts = resumed_schedule(first.size) if first is not None else None
        if parts is None:  # refused by `open_append`, with its reason
            return lambda offset: True
        return lambda offset: parts.parts_before(offset) is not None

    def check_parts(self, path: str) -> PartCheck:
        """The stored check of a partial's upload: the regenerated stream's parts against
        the stored parts' MD5 ETags and sizes (ListParts); FileNotFoundError if it is gone.
        The stream is cut by the upload's own schedule (from its part 1; see
        `_continue_upload`)."""
        found = self._find_upload(path)
        if found is None:
            raise FileNotFoundError(2, f"{self.description}: no upload of {path}")
        stored = self._stored_parts(*found[:2])
        first = next((p for p in stored if p.number == 1), None)
        parts = resumed_schedule(first.size) if first is not None else None
        return PartCheck(stored, self.description, parts or plan_parts(None))

    def rename(self, source: str, destination: str) -> None:
        """A partial's upload completed (`_complete`); any other object a server-side copy
        onto the destination (it appears whole, replacing any earlier object), then the
        source's delete."""
        if split_partial(source.rsplit("/", 1)[-1]) is not None:
            self._complete(source, destination)
            return
        src, dst = self._key(source), self._key(destination)
        self._call(
            f"copy {src} to {dst}",
            lambda: self._client.copy_object(
                Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": src}
            ),
        )
        self._delete(src)

    def touch(self, path: str, mtime: float | None = None) -> None:
        """PUT the object's bytes again: its LastModified becomes the store's now.

        S3 cannot set a time: `mtime` is ignored (the lock passes the server's own
        now, which the PUT gives it anyway)."""
        key = self._key(path)
        with self.open_read(path) as handle:
            data = handle.read()
        self._call(
            f"touch {key}",
            lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data),
        )

    def remove(self, path: str) -> None:
        """Delete the object, or abort a partial's upload; a missing one is no error (as
        `unlink(missing_ok=True)`)."""
        if split_partial(path.rsplit("/", 1)[-1]) is not None:
            found = self._find_upload(path)
            self._uploads.pop(path, None)
            if found is not None:
                key, upload_id, _ = found
                with contextlib.suppress(FileNotFoundError):  # aborted already
                    self._call(
                        f"abort the upload of {key}",
                        lambda: self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=key, UploadId=upload_id
                        ),
                    )
            return
        self._delete(self._key(path))

    def _delete(self, key: str) -> None:
        """Every version of it on a versioned bucket; RetainedError under Object Lock."""
        self.retention().delete(key)

    # ------------------------------------------------------------------ multipart uploads

    def _start_upload(
        self, path: str, attempt: str, estimate: int | None = None
    ) -> MultipartWriter:
        final = path[: -len(f".{attempt}.partial")]
        key = self._key(final)
        extra = self.retention().upload_args(key, datetime.now(UTC))
        try:
            answer = self._call(
                f"start the upload of {key}",
                lambda: self._client.create_multipart_upload(
                    Bucket=self.bucket, Key=key, Metadata={ATTEMPT_METADATA: attempt}, **extra
                ),
            )
        except PermanentError as exc:
            raise self.retention().refused(exc, key, extra) from exc
        state = UploadState(key, answer["UploadId"])
        self._uploads[path] = state
        self._tokens[path.strip("/")] = upload_token(state.upload_id)
        parts = plan_parts(estimate)
        if estimate is not None:
            log.info("%s: parts of %d MiB from a size estimate of %d bytes (up to %d MiB of "
                     "part buffers)", key, parts.first >> 20, estimate,
                     parts.memory(parts.first) >> 20)  # fmt: skip
        return MultipartWriter(
            state, self._part_sender(state), self.description, parts=parts, estimate=estimate
        )

    def _part_sender(self, state: UploadState) -> Callable[[int, bytearray], str]:
        key = state.key

        def send(number: int, data: bytearray) -> str:
            sent = self._call(
                f"upload part {number} of {key}",
                lambda: self._client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=state.upload_id,
                    PartNumber=number,
                    # botocore takes a bytearray as is (the stubs say bytes): one sendall,
                    # no Expect: 100-continue (s3_upload.py)
                    Body=data,  # type: ignore[arg-type]
                ),
            )
            return sent.get("ETag", "")

        return send

    def _complete(self, source: str, destination: str) -> None:
        """The commit: CompleteMultipartUpload, then HEAD: the object must hold every byte
        written, with the ETag of the parts sent (RGW answers the completion without one)."""
        state = self._uploads.get(source)
        if state is None:
            raise PermanentError(
                f"{source}: no upload of this process to complete ({self.description}); "
                "an upload of another process is completed only after `open_append` continued it"
            )
        key = state.key
        if self._key(destination) != key:
            raise PermanentError(f"{source} is an upload of {key}, not of {destination}")
        self._call(
            f"complete the upload of {key}",
            lambda: self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=state.upload_id,
                MultipartUpload={"Parts": state.part_list()},  # type: ignore[typeddict-item]
            ),
        )
        del self._uploads[source]
        head = self._call(
            f"look at {key}", lambda: self._client.head_object(Bucket=self.bucket, Key=key)
        )
        size, etag = head.get("ContentLength", -1), head.get("ETag", "")
        if size != state.written or etag != state.expected_etag():
            theirs = head.get("Metadata", {}).get(ATTEMPT_METADATA)
            ours = split_partial(source)
            if theirs and ours and theirs != ours[1]:
                # Another writer completed the same key after us (a rename over ours on a
                # file target): theirs stands whole; ours is not corrupt, only replaced.
                log.warning("%s was replaced by another upload (attempt %s) right after "
                            "this one (attempt %s) completed", key, theirs, ours[1])  # fmt: skip
                return
            raise IntegrityError(
                f"{key} holds {size} bytes with ETag {etag} after its upload completed; "
                f"{state.written} bytes were sent in parts making {state.expected_etag()} "
                f"({self.description}): remove it and back up again"
            )
        self.retention().after_complete(key, dict(head), datetime.now(UTC))

    def _list_uploads(self, start: str) -> list[tuple[str, str, float]]:
        """(key, UploadId, initiated) of the uploads in progress right below `start` (keys
        that start with it and hold no further `/`)."""
        pages = self._client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=start, Delimiter="/"
        )
        found = []
        for page in self._call(f"list the uploads of {start or '/'}", lambda: list(pages)):
            for upload in page.get("Uploads", []):
                initiated = upload.get("Initiated")
                found.append(
                    (
                        upload.get("Key", ""),
                        upload.get("UploadId", ""),
                        initiated.timestamp() if initiated else 0.0,
                    )
                )
        return found

    def _partial_of(self, key: str, upload_id: str) -> str:
        """The partial name an upload shows as: this process's own, or one from its UploadId
        (an upload of another process: its attempt is not in any listing)."""
        for path, state in self._uploads.items():
            if state.upload_id == upload_id:
                return self._key(path)
        return f"{key}.{upload_token(upload_id)}.partial"

    def _find_upload(self, path: str) -> tuple[str, str, float] | None:
        """(key, UploadId, initiated) of the upload a partial name stands for; None if none."""
        key = self._key(path)
        state = self._uploads.get(path)
        split = split_partial(key)
        if split is None:
            return None
        for found in self._list_uploads(split[0]):
            if found[0] != split[0]:
                continue
            if (state is not None and found[1] == state.upload_id) or (
                state is None and self._partial_of(*found[:2]) == key
            ):
                return found
        return None

    def _uploaded(self, key: str, upload_id: str) -> int:
        """Bytes stored in the upload's parts (ListParts); 0 once it is gone. A continued
        upload of this process counts only the parts its completion lists: parts an
        earlier attempt stored past the new stream's end are not in the object."""
        try:
            stored = self._stored_parts(key, upload_id)
        except FileNotFoundError:  # aborted meanwhile (RGW: NoSuchKey, AWS: NoSuchUpload)
            return 0
        ours = next(
            (s for s in self._uploads.values() if s.upload_id == upload_id and s.resumed), None
        )
        if ours is not None:
            listed = {number for number, _, _ in ours.parts}
            stored = [p for p in stored if p.number in listed]
        return sum(p.size for p in stored)

    def _stored_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """The upload's parts as the store holds them (ListParts); FileNotFoundError if gone."""
        pages = self._client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        listed = self._call(f"list the parts of {key}", lambda: list(pages))
        return [
            StoredPart(part.get("PartNumber", 0), part.get("Size", 0), part.get("ETag", ""))
            for page in listed
            for part in page.get("Parts", [])
        ]

    def _check_bucket(self) -> None:
        """A one-key listing: NoSuchBucket (or any refusal) as its one line."""
        start = self._dir_prefix("")
        self._call(
            f"list {start or '/'}",
            lambda: self._client.list_objects_v2(Bucket=self.bucket, Prefix=start, MaxKeys=1),
        )
        self.retention().check()

    # ------------------------------------------------------------------ errors

    def _call(self, doing: str, action: Callable[[], T]) -> T:
        """Run one request; its failure as FileNotFoundError or one typed line with the fix."""
        try:
            return action()
        except ClientError as exc:
            raise self._client_error(doing, exc) from exc
        except (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError) as exc:
            raise StoreError(
                f"{self.description}: cannot reach the S3 endpoint {self._endpoint} while "
                f"trying to {doing} ({type(exc).__name__}): is the store up? check "
                "target.s3.endpoint_url and the network"
            ) from exc
        except ReadTimeoutError as exc:
            raise StoreError(
                f"{self.description}: the store did not answer in time while trying to "
                f"{doing} (target.timeout): try again; if it repeats, check the store"
            ) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise PermanentError(
                f"{self.description}: no S3 credentials were found ({type(exc).__name__}): "
                f"{_CREDENTIALS_FIX}"
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"{self.description}: cannot {doing}: {exc}") from exc

    def _client_error(self, doing: str, exc: ClientError) -> Exception:
        error: Any = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        where = self.description
        if code in _NOT_FOUND:
            return FileNotFoundError(2, f"{where}: cannot {doing}: no such object")
        if code in ("403", "Forbidden"):
            # HEAD has no body to name the cause: ask a listing, whose error names it.
            try:
                self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
            except ClientError as named:
                if str(named.response.get("Error", {}).get("Code", "")) not in ("403", ""):
                    return self._client_error(doing, named)
            except BotoCoreError:
                pass
            return PermanentError(
                f"{where}: the store refused to {doing} (403 Forbidden): check the "
                f"credentials ({_CREDENTIALS_FIX}) and that the key may read the bucket"
            )
        if code == "PreconditionFailed" or status == 412:  # a create-only PUT met an object
            return FileExistsError(17, f"{where}: cannot {doing}: the object exists")
        if code == "QuotaExceeded":
            what = (
                f"bucket {self.bucket!r} is over its quota at {self._endpoint} (403 QuotaExceeded)"
            )
            fix = (
                "raise the bucket quota (Ceph: `radosgw-admin quota set --quota-scope=bucket "
                f"--bucket={self.bucket} --max-size=...`) or free room (`zfs-offsite prune`; "
                "an aborted upload's space returns after the store's garbage collection)"
            )
            return QuotaFullError(f"{where}: cannot {doing}: {what}: {fix}", what=what, fix=fix)
        if code == "NoSuchBucket":
            return PermanentError(
                f"{where}: the bucket {self.bucket!r} does not exist at {self._endpoint}: "
                "create it with the store's tools, or fix the bucket in target.url "
                "(zfs-offsite never creates a bucket)"
            )
        if code == "InvalidAccessKeyId":
            return PermanentError(
                f"{where}: the store does not know the access key (InvalidAccessKeyId): "
                f"{_CREDENTIALS_FIX}"
            )
        if code == "SignatureDoesNotMatch":
            return PermanentError(
                f"{where}: the secret key does not match the access key "
                f"(SignatureDoesNotMatch): {_CREDENTIALS_FIX}"
            )
        if code == "AccessDenied":
            return PermanentError(
                f"{where}: access denied while trying to {doing} (AccessDenied): give the "
                "key read, write, list and delete rights on the bucket, or use one that has them"
            )
        if code == "RequestTimeTooSkewed":
            return PermanentError(
                f"{where}: this host's clock differs from the store's by more than S3 allows "
                "(RequestTimeTooSkewed, usually 15 minutes): set the clock right (NTP, e.g. "
                "chrony or systemd-timesyncd) and try again"
            )
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return StoreError(f"{where}: the store failed to {doing} ({status} {code}): try again")
        message = str(error.get("Message", "")).replace("\n", " ")
        return PermanentError(f"{where}: cannot {doing}: {status} {code} {message}".rstrip())

    # ------------------------------------------------------------------ Object Lock

    object_lock = Wanted()  # target.s3.object_lock_days, object_lock_mode, storage_class

    def retention(self) -> Retention:
        """Object Lock and storage class on this bucket (remote/s3_retention.py)."""
        if self._retention is None:
            self._retention = Retention(
                self._client,
                self.bucket,
                self._endpoint_url,
                self._call,
                self.description,
                self.object_lock,
            )
        return self._retention

    def retained_until(self, path: str, now: datetime) -> datetime | None:
        """When Object Lock lets `path` be deleted, if that is after `now`; else None."""
        return self.retention().retained_until(self._key(path), now)

    # ------------------------------------------------------------------ the writer lock

    single_writer = False  # target.s3.single_writer: the admin vouches for one writer

    def lock_backend(self, path: str) -> S3Lock:
        """The lock at `path` as conditional PUTs (remote/s3_lock.py), probed once."""
        key, where = self._key(path), self.description
        lock = S3Lock(self._client, self.bucket, key, self._call, where, probe_prefix=self.prefix)
        lock.single_writer = self.single_writer
        return lock


class _ObjectReader:
    """A GET's body as the `ReadHandle` of small files."""

    def __init__(self, body: StreamingBody) -> None:
        self._body = body

    def read(self, size: int = -1, /) -> bytes:
        return self._body.read(None if size < 0 else size)

    def __enter__(self) -> _ObjectReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None:
        with contextlib.suppress(Exception):
            self._body.close()


def upload_token(upload_id: str) -> str:
    """12 hex digits naming an upload of another process as an attempt (`values/partials`)."""
    return hashlib.sha256(upload_id.encode()).hexdigest()[:12]


def _session(profile: str | None, keys: S3Keys | None) -> boto3.session.Session:
    """A boto3 session on the block's keys, else the AWS chain: environment, shared files, profile.

    Keys given to the session win over AWS_* variables and ~/.aws (boto3's order);
    settings refuse a block together with a profile.
    """
    if keys is not None:
        return boto3.session.Session(
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=keys.session_token,
        )
    try:
        return boto3.session.Session(profile_name=profile)
    except ProfileNotFound as exc:
        raise PermanentError(
            f"target.s3.profile {profile!r} is in neither ~/.aws/credentials nor "
            "~/.aws/config: add that section, or name one that is there"
        ) from exc


def _config(endpoint_url: str | None, addressing_style: Addressing, timeout: float) -> Config:
    """The client's settings: checksums only where S3 requires them, bounded waits.

    botocore >= 1.36 sends CRC32 trailers on uploads by default, which RGW 16 (and
    other stores) fail: `when_required` as the design says. `auto` addressing is
    path-style with an endpoint (most stores have no wildcard DNS), virtual on AWS.
    """
    style = addressing_style
    from_env = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if style == "auto" and (endpoint_url or from_env):
        style = "path"
    return Config(
        s3={"addressing_style": style},
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "max_attempts": 3},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
