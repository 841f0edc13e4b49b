"""The age stages on their own: round trips, aborts, damage, a wrong or damaged identity.

The pipeline runs with a stand-in for `zfs send` (a byte stream and an exit
status) into a local directory store: what lands on disk is what a user sees.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyrage
import pytest
import zstandard

from zfs_offsite.archive.names import Compression
from zfs_offsite.archive.recipients import parse_recipient, ssh_fingerprint
from zfs_offsite.errors import IntegrityError, SendError
from zfs_offsite.keys.identities import IdentityError, load_identities
from zfs_offsite.keys.keygen import new_identity, write_identity_file
from zfs_offsite.remote.local import LocalStore
from zfs_offsite.stream.compression import compressor
from zfs_offsite.stream.encryption import EncryptingCompressor, check_identity, decrypted_chunks
from zfs_offsite.stream.format import RECORD_SIZE
from zfs_offsite.stream.upload import stream_to_store

END = struct.pack("<I", 5) + bytes(RECORD_SIZE - 4)  # a DRR_END record


class FakeSend:
    """A finished `zfs send`: its stdout and its exit status."""

    def __init__(self, data: bytes, returncode: int = 0) -> None:
        self.stdout = io.BytesIO(data)
        self.stdin = None
        self.returncode = returncode

    def wait(self) -> int:
        return self.returncode

    def stderr_text(self) -> str:
        return "cannot send: I/O error" if self.returncode else ""

    def kill(self) -> None:
        pass

    def close_stdin(self) -> None:
        pass


def keys() -> tuple[list[object], list[pyrage.x25519.Identity]]:
    secret, public = new_identity()
    return [parse_recipient(public)], [pyrage.x25519.Identity.from_str(secret)]


def seal(data: bytes, recipients: list[object]) -> bytes:
    stage = EncryptingCompressor(compressor(Compression.ZSTD, 3), recipients)  # type: ignore[arg-type]
    out = [stage.compress(data[i : i + 100_000]) for i in range(0, len(data), 100_000)]
    return b"".join([*out, stage.finish()])


def pieces(data: bytes, size: int = 50_000) -> Iterator[bytes]:
    return iter([data[i : i + size] for i in range(0, len(data), size)])


def opened(data: bytes, identities: list[pyrage.x25519.Identity]) -> bytes:
    plain = b"".join(decrypted_chunks(pieces(data), identities, "m/f.zst.age"))
    return zstandard.ZstdDecompressor().decompressobj().decompress(plain)


def test_round_trip_through_both_stages() -> None:
    recipients, identities = keys()
    data = os.urandom(300_000) + b"z" * 2_000_000
    sealed = seal(data, recipients)
    assert sealed.startswith(b"age-encryption.org/v1\n")
    assert opened(sealed, identities) == data


def test_a_wrong_identity_fails_before_any_output() -> None:
    recipients, identities = keys()
    _, stranger = keys()
    sealed = seal(os.urandom(200_000), recipients)
    chunks = decrypted_chunks(pieces(sealed), stranger, "m/f.zst.age", ["age1abc"])
    with pytest.raises(
        IdentityError, match=r"^m/f\.zst\.age: the identity .* \(its recipients: age1abc\)"
    ):
        next(chunks)
    with pytest.raises(IdentityError):
        check_identity(sealed[:65536], stranger, "m/f.zst.age")
    check_identity(sealed[:65536], identities, "m/f.zst.age")  # the right one opens it


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damage_after_the_header_is_an_integrity_error(damage: str) -> None:
    recipients, identities = keys()
    sealed = bytearray(seal(os.urandom(300_000), recipients))
    if damage == "flip":
        sealed[len(sealed) // 2] ^= 1
    else:
        del sealed[-100:]
    check_identity(bytes(sealed[:65536]), identities, "m/f")  # the header still opens
    with pytest.raises(IntegrityError, match=r"^m/f\.zst\.age: the age data is corrupt"):
        opened(bytes(sealed), identities)


def test_an_error_of_the_stored_bytes_comes_back_as_itself() -> None:
    recipients, identities = keys()
    sealed = seal(os.urandom(100_000), recipients)

    def failing() -> Iterator[bytes]:
        yield sealed[:1000]
        raise IntegrityError("m/f.zst.age: sha256 abc does not match the sidecar's def")

    with pytest.raises(IntegrityError, match="does not match the sidecar"):
        b"".join(decrypted_chunks(failing(), identities, "m/f.zst.age"))


def test_the_upload_stores_ciphertext_whose_checksum_is_of_the_stored_bytes(
    tmp_path: Path,
) -> None:
    recipients, identities = keys()
    stream = os.urandom(500_000) + END
    store = LocalStore(tmp_path)
    result = stream_to_store(
        FakeSend(stream),  # type: ignore[arg-type]
        compressor(Compression.ZSTD, 3),
        store,
        "f.zst.age",
        recipients=recipients,  # type: ignore[arg-type]
    )
    stored = (tmp_path / result.partial).read_bytes()
    assert result.stored_bytes == len(stored) and result.raw_bytes == len(stream)
    assert result.sha256 == hashlib.sha256(stored).hexdigest()
    assert opened(stored, identities) == stream


@pytest.mark.parametrize("returncode, tail", [(1, END), (0, b"no end record")])
def test_a_failed_send_leaves_no_file_and_seals_nothing(
    tmp_path: Path, returncode: int, tail: bytes
) -> None:
    recipients, _ = keys()
    store = LocalStore(tmp_path)
    with pytest.raises(SendError):
        stream_to_store(
            FakeSend(os.urandom(200_000) + tail, returncode),  # type: ignore[arg-type]
            compressor(Compression.ZSTD, 3),
            store,
            "f.zst.age",
            recipients=recipients,  # type: ignore[arg-type]
        )
    assert list(tmp_path.iterdir()) == []


def test_a_consumer_that_stops_early_ends_the_stage_and_closes_its_source() -> None:
    recipients, identities = keys()
    sealed = seal(os.urandom(2_000_000), recipients)
    closed = []

    def source() -> Iterator[bytes]:
        try:
            yield from pieces(sealed, 10_000)
        finally:
            closed.append(True)

    chunks = decrypted_chunks(source(), identities, "m/f.zst.age")
    assert next(chunks)
    chunks.close()
    assert closed == [True]


@pytest.mark.parametrize("size", [0, 1, 65_536, 65_537, 1_000_000])
def test_the_output_length_is_checked_against_the_input(size: int) -> None:
    recipients, identities = keys()

    class Passthrough:  # a compressor that passes bytes through, so sizes are exact
        def compress(self, data: bytes) -> bytes:
            return data

        def finish(self) -> bytes:
            return b""

    stage = EncryptingCompressor(Passthrough(), recipients)  # type: ignore[arg-type]
    data = os.urandom(size)
    sealed = stage.compress(data) + stage.finish()
    assert pyrage.decrypt(sealed, identities) == data

    short = EncryptingCompressor(Passthrough(), recipients)  # type: ignore[arg-type]
    short.compress(data)
    short.plain_bytes += 65_536  # as if the last chunk had not been written
    with pytest.raises(IntegrityError, match="the output is cut short or overlong"):
        short.finish()


def test_a_wrong_identity_names_its_own_key_too(tmp_path: Path) -> None:
    recipients, _ = keys()
    stranger = tmp_path / "stranger.txt"
    public = write_identity_file(stranger)
    sealed = seal(os.urandom(100_000), recipients)
    with pytest.raises(IdentityError) as caught:
        check_identity(sealed[:65536], load_identities(stranger), "m/f.zst.age", ["age1abc"])
    assert str(caught.value).endswith(
        f"(its recipients: age1abc); the identity's key is {public}: name the secret key of "
        "one of them"
    )


def _stanza_changed(sealed: bytes, tag: bytes, offset: int) -> bytes:
    """`sealed` with one base64 letter changed in the header stanza that starts `tag`."""
    damaged = bytearray(sealed)
    at = sealed.index(tag) + len(tag) + offset
    damaged[at] = ord("B") if damaged[at] == ord("A") else ord("A")
    return bytes(damaged)


def test_a_damaged_stanza_of_a_listed_identity_is_damage_not_a_wrong_key(tmp_path: Path) -> None:
    age_secret, age_public = new_identity()
    ssh_key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_key)], check=True)
    ssh_public = (tmp_path / "id_ed25519.pub").read_text()
    recipients = [parse_recipient(age_public), parse_recipient(ssh_public)]
    listed = [r.fingerprint for r in recipients]
    sealed = seal(os.urandom(200_000), recipients)
    ssh_identities = load_identities(ssh_key)
    age_identities = [pyrage.x25519.Identity.from_str(age_secret)]
    fingerprint = ssh_fingerprint(base64.b64decode(ssh_public.split()[1]))
    for tag, offset, identities, key in [
        (b"-> X25519 ", 10, age_identities, age_public),  # the ephemeral share
        (b"-> ssh-ed25519 ", 2, ssh_identities, fingerprint),  # the key's tag
    ]:
        damaged = _stanza_changed(sealed, tag, offset)
        with pytest.raises(IntegrityError) as caught:
            check_identity(damaged[:65536], identities, "m/f.zst.age", listed)
        assert str(caught.value) == (
            "m/f.zst.age: the age header is damaged or the sidecar was edited: the sidecar "
            f"lists the identity's key {key} among the recipients, but the header does not "
            "open with it; put back a sound copy of the file, or use another recipient's identity"
        )
        with pytest.raises(IntegrityError, match="the age header is damaged or the sidecar"):
            next(decrypted_chunks(pieces(damaged), identities, "m/f.zst.age", listed))


@pytest.mark.parametrize("offset", [0, 23, 119])
def test_a_damaged_header_fails_the_check_in_one_line(offset: int) -> None:
    recipients, identities = keys()
    damaged = bytearray(seal(os.urandom(100_000), recipients))
    damaged[offset] ^= 1  # the version line, a stanza's arrow, the stanza after it
    with pytest.raises(IntegrityError) as caught:
        check_identity(bytes(damaged[:65536]), identities, "m/f.zst.age")
    message = str(caught.value)
    assert message.startswith("m/f.zst.age: the age header is damaged") and "\n" not in message
    with pytest.raises(IntegrityError) as streamed:
        b"".join(decrypted_chunks(pieces(bytes(damaged)), identities, "m/f.zst.age"))
    assert "\n" not in str(streamed.value)
