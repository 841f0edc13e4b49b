"""Stream compressors and decompressors for the archive's two formats.

gzip goes through ISA-L (`isal`), which writes standard gzip many times faster
than zlib at comparable ratio, so seed-era archives stay gzip without being
slow. zstd is multi-threaded and writes frame checksums.
"""

from __future__ import annotations

from typing import Any, Protocol

import zstandard
from isal import isal_zlib

from zfs_offsite.archive.names import Compression
from zfs_offsite.errors import IntegrityError

GZIP_WBITS = 31  # 16 + 15: gzip header and trailer


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


class Decompressor(Protocol):
    def decompress(self, data: bytes | memoryview) -> bytes: ...
    def finish(self) -> None:
        """Raise IntegrityError if the input ended inside a frame or member."""
        ...


class _Zstd:
    def __init__(self, level: int, threads: int) -> None:
        # python-zstandard: threads=0 compresses in the caller, N>0 uses N workers.
        self._obj = zstandard.ZstdCompressor(
            level=level, threads=threads if threads > 1 else 0, write_checksum=True
        ).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finish(self) -> bytes:
        return self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


class _Gzip:
    def __init__(self, level: int) -> None:
        self._obj = isal_zlib.compressobj(level, isal_zlib.DEFLATED, GZIP_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def finish(self) -> bytes:
        return self._obj.flush()


def compressor(kind: Compression, level: int, threads: int = 1) -> Compressor:
    if kind is Compression.ZSTD:
        return _Zstd(level, threads)
    return _Gzip(level)


class _Framed:
    """Decompresses concatenated frames (zstd) or members (gzip), checking the last ends."""

    def __init__(self, kind: Compression) -> None:
        self._kind = kind
        self._obj = self._new()
        self._fed = False

    def _new(self) -> Any:  # zstandard's and isal's decompress objects share no type
        if self._kind is Compression.ZSTD:
            return zstandard.ZstdDecompressor().decompressobj()
        return isal_zlib.decompressobj(GZIP_WBITS)

    def decompress(self, data: bytes | memoryview) -> bytes:
        out = []
        try:
            while data:
                self._fed = True
                out.append(self._obj.decompress(data))
                if not self._obj.eof:
                    break
                data = self._obj.unused_data
                self._obj = self._new()
                self._fed = False
        # isal's stub types `error` loosely; at run time it is IsalError, an Exception.
        except (zstandard.ZstdError, isal_zlib.error) as exc:  # type: ignore[misc]
            raise IntegrityError(f"{self._kind.value} data is corrupt: {exc}") from exc
        return b"".join(out)

    def finish(self) -> None:
        if self._fed and not self._obj.eof:
            raise IntegrityError(f"{self._kind.value} data ends early (truncated file)")


def decompressor(kind: Compression) -> Decompressor:
    return _Framed(kind)
