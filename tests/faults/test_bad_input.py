"""Bad input fails one member, never the run, and nothing is skipped silently.

Real zfs-fuse datasets where the input is a dataset name, real stores (the
private sshd, and a local directory) where it is something on the backup
server. Each test checks what an operator would: verdicts and their one-line
details, what is still on the server, what the next backup builds on.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from flows.backup import backup_flow
from flows.prune import prune_flow
from flows.restore import restore_flow
from flows.verify import verify_flow
from tests.support.cli import Cli, Result, base_env
from tests.support.flow_runs import env_for
from tests.support.services import Pool, SshServer, ensure_test_user
from tests.support.settings_edit import with_section
from tests.support.zfsdata import create_member, snapshot, write_member_data
from zfs_offsite.archive.identity import MARKER_NAME
from zfs_offsite.archive.model import Sidecar
from zfs_offsite.connect import open_store
from zfs_offsite.errors import ChainError, ConfigError, MembersFailed
from zfs_offsite.jobs.backup import backup_member, discover_members, plan_member
from zfs_offsite.jobs.prune import prune_member
from zfs_offsite.jobs.restore import download_chain, plan_restore
from zfs_offsite.jobs.status import read_status
from zfs_offsite.jobs.verify import FAILING, Verdict, verify_member
from zfs_offsite.plan.backup import Action
from zfs_offsite.settings import Settings
from zfs_offsite.zfs.members import Member, select_members
from zfs_offsite.zfs.model import Dataset

pytestmark = pytest.mark.integration

S1, S2, S3 = "auto-20190806.0200-1w", "auto-20190807.0200-1w", "auto-20190808.0200-1w"
FULL = f"elabfs-erin@{S1}.zst"
INCR = f"elabfs-erin@{S1}.to.elabfs-erin@{S2}.zst"


def use_env(monkeypatch: pytest.MonkeyPatch, pool: Pool, archive: Path, sshd: SshServer) -> None:
    """Settings from the environment, as the flows read them on a host."""
    url = f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{archive}"
    for key, value in env_for(pool.name, url, sshd.client_key, sshd.known_hosts).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ZFS_OFFSITE_RETRY_DELAY", "0.2")


class Erin:
    """Member `erin` with a full and an incremental in the archive."""

    def __init__(self, pool: Pool, settings: Settings, archive: Path) -> None:
        self.pool, self.settings, self.dir = pool, settings, archive / "erin"
        self.dataset = f"{pool.name}/elabfs-erin"

    def member(self) -> Member:
        (member,) = discover_members(self.settings)
        return member

    def new_snapshot(self, name: str, seed: int) -> Member:
        write_member_data(self.pool.mountpoint / "elabfs-erin", seed, 1)
        snapshot(self.dataset, name)
        return self.member()

    def plan(self) -> tuple[Action, str | None]:
        with closing(open_store(self.settings.target)) as store:
            plan, _ = plan_member(self.settings, store, self.member())
        return plan.action, plan.base.name if plan.base else None

    def backup_twice(self) -> None:
        """A full of S1, then an incremental to S2 (a second later, as SFTP mtimes are seconds)."""
        assert backup_member(self.settings, self.new_snapshot(S1, 1)).action is Action.FULL
        time.sleep(1.1)
        assert backup_member(self.settings, self.new_snapshot(S2, 2)).action is Action.INCREMENTAL
        assert {FULL, INCR} <= self.files()

    def files(self) -> set[str]:
        return {p.name for p in self.dir.iterdir()}


@pytest.fixture(params=["sftp", "local"])
def erin(
    request: pytest.FixtureRequest,
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    settings_for: Callable[..., Settings],
) -> Erin:
    pool = pool_factory()
    create_member(pool.name, "erin")
    archive = sftp_dir
    m = Erin(pool, settings_for(pool, archive, local=request.param == "local"), archive)
    m.backup_twice()
    return m


@pytest.fixture
def sftp_erin(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> Erin:
    pool = pool_factory()
    create_member(pool.name, "erin")
    m = Erin(pool, settings_for(pool, sftp_dir), sftp_dir)
    m.backup_twice()
    return m


def verify(m: Erin) -> dict[str, tuple[Verdict, str]]:
    with closing(open_store(m.settings.target)) as store:
        report = verify_member(m.settings, store, "erin", mark=False)
    return {f.filename: (f.verdict, f.detail) for f in report.files} | {
        "(member)": (report.verdict, report.detail)
    }


# 1. No member name starts with a dot; hidden directories and lost+found at the root are
# left alone by verify and prune (they were verified as members and failed every run).


def test_dot_named_member_fails_alone_and_hidden_root_directories_are_left_alone(
    prefect: None,
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    sshd: SshServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = pool_factory()
    for name, seed in (("..dots", 1), ("alice", 2)):
        dataset = create_member(pool.name, name)
        write_member_data(pool.mountpoint / f"elabfs-{name}", seed, 1)
        snapshot(dataset, S1)
    use_env(monkeypatch, pool, sftp_dir, sshd)
    bad = f"{pool.name}/elabfs-..dots"
    backed_up = backup_flow(return_state=True)
    error = backed_up.result(raise_on_failure=False)
    assert isinstance(error, MembersFailed)
    assert {o.member: (o.action, o.error) for o in error.outcomes} == {
        bad: (
            "failed",
            f"dataset {bad} gives no usable member name ('..dots') (verify and prune leave "
            "hidden names and lost+found alone): rename the dataset, or leave it out by "
            "listing the datasets to back up in source.datasets",
        ),
        "alice": ("full", None),
    }
    alice = sftp_dir / "alice"
    # What else lives at a target's root: ext4's lost+found, a NAS's hidden directories,
    # the tool's own records (one of them a directory by mistake).
    hidden = [".snapshot", "..dots", "lost+found", ".zfs-offsite-drills.json"]
    for name in hidden:
        (sftp_dir / name).mkdir()
        (sftp_dir / name / "elabfs-x@s.zst.partial").write_bytes(b"not ours")
    # The tool's own dot-files in a member directory: a lock left by a run that died an
    # hour ago (prune takes it over) and a stale partial upload.
    lock = alice / ".zfs-offsite.lock"
    lock.write_text("host pid run\n")
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    stale = alice / f"elabfs-alice@{S2}.zst.partial"
    stale.write_bytes(b"left by a crashed upload")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stale, (two_days_ago, two_days_ago))

    verified = verify_flow()
    assert {r.member: r.verdict for r in verified} == {"alice": Verdict.OK}
    plans = prune_flow()
    assert [p.member for p in plans] == ["alice"]
    assert not stale.exists() and not lock.exists()
    assert (alice / f"elabfs-alice@{S1}.zst").is_file()
    for name in hidden:
        assert [p.name for p in (sftp_dir / name).iterdir()] == ["elabfs-x@s.zst.partial"]
    assert sorted(p.name for p in sftp_dir.iterdir()) == sorted(
        [*hidden, "alice", ".zfs-offsite-verified.json", MARKER_NAME]
    )

    # A symlink at the root is never followed: verify and prune fail it, by name.
    (sftp_dir / "linked").symlink_to(alice)
    before = sorted(p.name for p in alice.iterdir())
    for flow in (verify_flow, prune_flow):
        state = flow(return_state=True)  # type: ignore[operator]
        assert state.is_failed()
        assert str(state.result(raise_on_failure=False)).endswith(" linked")
    assert sorted(p.name for p in alice.iterdir()) == before


# 2. A file this tool wrote whose sidecar is gone is a finding, never "seed era".


def test_missing_json_of_a_zst_file_is_a_finding_and_no_base(sftp_erin: Erin) -> None:
    m = sftp_erin
    (m.dir / f"{INCR}.json").unlink()
    found = verify(m)
    verdict, detail = found[INCR]
    assert verdict is Verdict.BAD_SIDECAR and verdict in FAILING
    assert detail == (
        f"{INCR}.json is missing (this tool wrote the file: a .zst file): its snapshot GUIDs "
        "are unknown, so it is no base and no restore link; put the .json back from a copy, "
        "or move the file aside"
    )
    assert found["(member)"][0] is Verdict.BAD_SIDECAR
    assert found[FULL][0] is Verdict.OK
    # Restore says why the newest snapshot cannot be restored; the older one still can.
    with closing(open_store(m.settings.target)) as store:
        with pytest.raises(ChainError, match=rf"{INCR} cannot be a link: {INCR}\.json is missing"):
            plan_restore(store, "erin", None)
        assert [f.filename for f in plan_restore(store, "erin", S1).chain] == [FULL]
    # The next backup builds on the sound full, never on the file of unknown identity.
    m.new_snapshot(S3, 3)
    assert m.plan() == (Action.INCREMENTAL, S1)


def test_json_missing_next_to_a_sha256_of_a_gz_file_is_a_finding(
    pool_factory: Callable[[], Pool], sftp_dir: Path, settings_for: Callable[..., Settings]
) -> None:
    pool = pool_factory()
    create_member(pool.name, "erin")
    m = Erin(pool, settings_for(pool, sftp_dir, compression="gzip"), sftp_dir)
    backup_member(m.settings, m.new_snapshot(S1, 1))
    full = f"elabfs-erin@{S1}.gz"
    (m.dir / f"{full}.json").unlink()
    verdict, detail = verify(m)[full]
    assert verdict is Verdict.BAD_SIDECAR
    assert detail.startswith(f"{full}.json is missing (this tool wrote the file: it has a .sha256)")
    # Nothing sound is archived and the full's name is taken: refused, never overwritten.
    assert m.plan() == (Action.CONFLICT, None)


def test_missing_sha256_is_a_finding_and_its_fix_works(sftp_erin: Erin) -> None:
    m = sftp_erin
    checksum = m.dir / f"{INCR}.sha256"
    line = checksum.read_text().strip()
    checksum.unlink()
    verdict, detail = verify(m)[INCR]
    assert verdict is Verdict.BAD_SIDECAR
    assert detail == f"{INCR}.sha256 is missing: recreate it as the line '{line}'"
    # The .json still proves what the file is: the next backup builds on it.
    m.new_snapshot(S3, 3)
    assert m.plan() == (Action.INCREMENTAL, S2)
    # Following the fix makes `sha256sum -c` and verify pass again.
    checksum.write_text(line + "\n")
    subprocess.run(["sha256sum", "-c", checksum.name], cwd=m.dir, check=True, capture_output=True)
    assert verify(m)["(member)"][0] is Verdict.OK


def test_wrong_sha256_line_is_a_finding(sftp_erin: Erin) -> None:
    m = sftp_erin
    checksum = m.dir / f"{INCR}.sha256"
    good = checksum.read_text().strip()
    checksum.write_text("")  # what a full disk leaves
    verdict, detail = verify(m)[INCR]
    assert verdict is Verdict.BAD_SIDECAR
    assert detail == (
        f"{INCR}.sha256 does not hold the checksum of the file and its .json "
        f"(sha256sum -c fails): recreate it as the line '{good}'"
    )
    # Both sidecars empty (disk full while they were written): a finding, not "seed era".
    (m.dir / f"{INCR}.json").write_text("")
    verdict, detail = verify(m)[INCR]
    assert verdict is Verdict.BAD_SIDECAR
    assert detail.startswith(f"{INCR}.json is unreadable (not JSON (Expecting value")
    # Without its .json, a .sha256 that records another checksum means corrupt.
    checksum.write_text(good.replace(good[:8], "00000000", 1) + "\n")
    verdict, detail = verify(m)[INCR]
    assert verdict is Verdict.CORRUPT
    assert detail.endswith(f"does not match its {INCR}.sha256 (00000000{good[8:64]})")


# 3. A sidecar of any JSON shape is a finding; nothing crashes, nothing is deleted.

SHAPES = {
    b"[]": "a JSON array, not an object",
    b"null": "a JSON null, not an object",
    b'"x"': "a JSON string, not an object",
    b"1": "a JSON number, not an object",
    b"": "not JSON (Expecting value: line 1 column 1 (char 0))",
    b"{": "not JSON (Expecting property name enclosed in double quotes: line 1 column 2",
    b"\xff": "not JSON ('utf-8' codec can't decode byte 0xff",
    b"{}": "no 'dataset' field",
    b"[" * 100_000: "not JSON (nested too deeply)",
}


def test_sidecar_of_any_shape_is_a_finding_not_a_crash(sftp_erin: Erin) -> None:
    m = sftp_erin
    metadata = m.dir / f"{INCR}.json"
    good = metadata.read_bytes()
    wrong_type = good.replace(b'"target_guid": ', b'"target_guid": "', 1).replace(
        b',\n  "tool_version"', b'",\n  "tool_version"', 1
    )
    shapes = SHAPES | {
        wrong_type: "field 'target_guid' is \"",
        good.replace(b'"raw_bytes"', b'"raw_bytez"'): "no 'raw_bytes' field",
        good.replace(b'"format": 1', b'"format": true'): "field 'format' is true, not an integer",
    }
    assert len(shapes) == len(SHAPES) + 3
    member = m.new_snapshot(S3, 3)
    before = m.files()
    for data, why in shapes.items():
        metadata.write_bytes(data)
        verdict, detail = verify(m)[INCR]
        assert verdict is Verdict.BAD_SIDECAR, data
        assert detail.startswith(f"{INCR}.json is unreadable ({why}"), (data, detail)
        with closing(open_store(m.settings.target)) as store:
            status = read_status(store, member)
            assert (status.newest_archived, status.findings) == (S1, 1)
            with pytest.raises(ChainError, match="is unreadable"):
                plan_restore(store, "erin", None)
            daily = with_section(m.settings, "retention", policy="all 1d")
            plan = prune_member(daily, store, "erin")
            assert [f.filename for f in plan.untouched] == [INCR]
        assert m.plan() == (Action.INCREMENTAL, S1)
        assert m.files() == before  # prune deleted nothing


def test_sidecar_parser_names_what_is_wrong() -> None:
    for data, why in SHAPES.items():
        with pytest.raises(ValueError) as caught:
            Sidecar.from_json(data)
        assert str(caught.value).startswith(why)
        assert "\n" not in str(caught.value)


# 4. Directories and symlinks where files are expected: never followed or deleted through.


def outside(sftp_dir: Path) -> Path:
    """A directory the SFTP user could delete from: only not following links keeps it whole."""
    user = ensure_test_user()
    path = sftp_dir.parent / f"outside-{secrets.token_hex(4)}"
    path.mkdir()
    (path / "precious.zst.json").write_text("not the tool's\n")
    for p in (path, path / "precious.zst.json"):
        os.chown(p, user.pw_uid, user.pw_gid)
    return path


def test_directory_where_a_json_sidecar_should_be_is_a_finding(erin: Erin) -> None:
    m = erin
    (m.dir / f"{INCR}.json").unlink()
    (m.dir / f"{INCR}.json").mkdir()
    found = verify(m)
    assert found[INCR] == (
        Verdict.BAD_SIDECAR,
        f"{INCR}.json is a directory, not a file: its snapshot GUIDs are unknown, so it is "
        "no base and no restore link; put the .json back from a copy, or move the file aside",
    )
    assert found[f"{INCR}.json"][0] is Verdict.NOT_A_FILE
    # Its name is taken by a file of unknown identity: the backup refuses to overwrite it.
    assert m.plan() == (Action.CONFLICT, S1)
    assert (m.dir / INCR).is_file()


def test_directories_and_symlinks_named_like_ours_are_left_alone_and_reported(
    erin: Erin, sftp_dir: Path
) -> None:
    m = erin
    elsewhere = outside(sftp_dir)
    try:
        old = time.time() - 3 * 86400
        (m.dir / "elabfs-erin@gone.zst.json").mkdir()  # like an orphaned sidecar
        (m.dir / f"elabfs-erin@{S3}.zst").symlink_to(elsewhere)  # like a backup
        (m.dir / "elabfs-erin@gone2.zst.json").symlink_to(elsewhere / "precious.zst.json")
        (m.dir / f"elabfs-erin@{S3}.zst.partial").mkdir()
        os.utime(m.dir / f"elabfs-erin@{S3}.zst.partial", (old, old))
        orphan = m.dir / "elabfs-erin@older.zst.sha256"
        orphan.write_text("a real orphaned sidecar: prune removes it\n")

        found = verify(m)
        assert found[FULL][0] is Verdict.OK and found[INCR][0] is Verdict.OK
        assert found[f"elabfs-erin@{S3}.zst"] == (
            Verdict.NOT_A_FILE,
            f"elabfs-erin@{S3}.zst is a symlink (never followed), not a file: never read or "
            "deleted by this tool; move it aside",
        )
        assert found["elabfs-erin@gone.zst.json"][0] is Verdict.NOT_A_FILE
        assert found["(member)"][0] is Verdict.NOT_A_FILE

        before = m.files()
        with closing(open_store(m.settings.target)) as store:
            at_once = with_section(m.settings, "retention", policy=None, stale_partial_hours=0)
            plan = prune_member(at_once, store, "erin")
        assert m.files() == before - {orphan.name}
        assert plan.ignored["elabfs-erin@gone.zst.json"] == (
            "elabfs-erin@gone.zst.json is a directory, not a file"
        )
        assert "symlink" in plan.ignored["elabfs-erin@gone2.zst.json"]
        assert (elsewhere / "precious.zst.json").read_text() == "not the tool's\n"
        m.new_snapshot(S3, 3)
        assert m.plan() == (Action.INCREMENTAL, S2)  # the symlink is no backup of S3
    finally:
        shutil.rmtree(elsewhere)


# 5. A dataset with an unusable name fails alone; the others are backed up.


def test_unusable_dataset_name_fails_that_member_only(
    prefect: None,
    pool_factory: Callable[[], Pool],
    sftp_dir: Path,
    sshd: SshServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = pool_factory()
    for name, seed in (("..", 0), ("alice", 1), ("bob", 2)):
        dataset = create_member(pool.name, name)
        write_member_data(pool.mountpoint / f"elabfs-{name}", seed, 1)
        snapshot(dataset, S1)
    use_env(monkeypatch, pool, sftp_dir, sshd)
    bad = f"{pool.name}/elabfs-.."
    expected = (
        f"dataset {bad} gives no usable member name ('..'): rename the dataset, or leave it "
        "out by listing the datasets to back up in source.datasets"
    )
    state = backup_flow(return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, MembersFailed)
    assert str(error) == f"backup failed for 1 member(s): {bad}"
    assert {o.member: (o.action, o.error) for o in error.outcomes} == {
        bad: ("failed", expected),
        "alice": ("full", None),
        "bob": ("full", None),
    }
    assert sorted(p.name for p in sftp_dir.iterdir()) == [MARKER_NAME, "alice", "bob"]
    for name in ("alice", "bob"):
        subprocess.run(
            ["sha256sum", "-c", f"elabfs-{name}@{S1}.zst.sha256"],
            cwd=sftp_dir / name,
            check=True,
            capture_output=True,
        )


def test_datasets_that_share_a_member_name_fail_alone() -> None:
    """Selected by property, `tank/x` and `tank/elabfs-x` both map to member `x` (pure)."""
    names = ["tank/x", "tank/elabfs-x", "tank/elabfs-y"]
    datasets = {n: Dataset(n, i, {"zfs-offsite:backup": "on"}) for i, n in enumerate(names)}
    members = select_members(datasets, "tank", "elabfs-", [], "zfs-offsite:backup")
    shared = (
        "datasets tank/elabfs-x and tank/x map to one member x: rename the dataset, or leave "
        "it out by listing the datasets to back up in source.datasets"
    )
    assert [(m.name, m.error) for m in members] == [
        ("tank/elabfs-x", shared),
        ("y", None),
        ("tank/x", shared),
    ]


# 10. Bad input that escaped: each is one line naming the thing and the fix, exit 2, through
# the real console script. Ages too large for a date, numbers that are not finite, a password
# or a stray part in a URL, a file setting that is not a file, a member name none can have.


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """The console script in an empty directory, its settings from the environment only."""
    (tmp_path / "cwd").mkdir()
    archive = tmp_path / "archive"
    archive.mkdir()
    env = base_env(tmp_path / "prefect") | {"ZFS_OFFSITE_TARGET__URL": f"file://{archive}"}
    return Cli(env, tmp_path / "cwd")


def one_error(result: Result) -> str:
    """The single `error:` line of a bad-input exit (after the config banner and the local
    server's progress lines), asserting exit 2."""
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    banners = ("config:", "starting", "local Prefect server:")
    errors = [line for line in result.err_lines if not line.startswith(banners)]
    assert len(errors) == 1, result.output
    return errors[0]


def test_ages_too_large_for_a_date_are_refused_with_the_range(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[retention]\npolicy = "all 7d, daily 99999999999999y"\n')
    for command in (("config", "--check", "-c", str(config)), ("prune", "-c", str(config))):
        assert one_error(cli(*command)) == (
            f"error: setting retention.policy ({config}:2): 'daily 99999999999999y': the age "
            "must be at most 100 years (100y, 1180m, 5228w, 36600d)"
        )
    down = cli.with_env(PREFECT_API_URL="http://127.0.0.1:9/api")  # never reached
    assert one_error(down("history", "--since", "99999999999d")) == (
        "error: --since '99999999999d': the age must be at most 100 years "
        "(100y, 1180m, 5228w, 36600d)"
    )
    assert one_error(down("history", "--since", "0w")) == (
        "error: --since '0w': the age must be at least 1"
    )
    assert one_error(down("history", "--since", "0001-01-01T00:00+14:00")) == (
        "error: --since 0001-01-01T00:00+14:00: give an age like 90d, 12h, 2w, or a date like "
        "2026-06-01"
    )


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        (
            "RETRY_DELAY",
            "inf",
            "retry_delay (env ZFS_OFFSITE_RETRY_DELAY): must be a number of seconds from 0 to 3600",
        ),
        (
            "TARGET__TIMEOUT",
            "nan",
            "target.timeout (env ZFS_OFFSITE_TARGET__TIMEOUT): must be a "
            "number of seconds from 1 to 3600",
        ),
        (
            "LOCK__WAIT_SECONDS",
            "1e999",
            "lock.wait_seconds (env ZFS_OFFSITE_LOCK__WAIT_SECONDS): "
            "must be a number of seconds from 0 to 86400",
        ),
        (
            "LOCK__STALE_SECONDS",
            "-inf",
            "lock.stale_seconds (env ZFS_OFFSITE_LOCK__STALE_SECONDS)"
            ": must be a number of seconds from 120 to 86400",
        ),
        (
            "FULL__AFTER_DAYS",
            "inf",
            "full.after_days (env ZFS_OFFSITE_FULL__AFTER_DAYS): must be "
            "a number of days more than 0 and at most 3660",
        ),
        (
            "FULL__AFTER_INCREMENTALS",
            "99999999999999999999",
            "full.after_incrementals (env "
            "ZFS_OFFSITE_FULL__AFTER_INCREMENTALS): must be a number of incrementals from 1 to "
            "100000",
        ),
        (
            "RETENTION__STALE_PARTIAL_HOURS",
            "inf",
            "retention.stale_partial_hours (env "
            "ZFS_OFFSITE_RETENTION__STALE_PARTIAL_HOURS): must be a number of hours from 1 to 8784",
        ),
    ],
)
def test_numbers_that_are_not_finite_or_past_any_use_are_refused_with_their_range(
    cli: Cli, variable: str, value: str, says: str
) -> None:
    for command in (("config", "--check"), ("plan",)):
        assert one_error(cli(*command, **{f"ZFS_OFFSITE_{variable}": value})) == (
            f"error: setting {says}"
        )


def test_a_password_in_a_url_is_refused_and_never_shown(cli: Cli) -> None:
    for variable, url in (
        ("ZFS_OFFSITE_TARGET__URL", "sftp://backup:Hunter2secret@nas.example:2222/~/zfs"),
        ("ZFS_OFFSITE_SOURCE__SSH_URL", "ssh://root:Hunter2secret@nas.example"),
    ):
        for command in (("config",), ("config", "--check"), ("status",), ("plan",)):
            result = cli(*command, **{variable: url})
            assert "Hunter2secret" not in result.output
            line = one_error(result)
            assert "holds a password, which this tool refuses" in line, line
            assert line.endswith("log in with key_file or an SSH agent")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sftp://backup@nas:0/srv/zfs", "the port must be a number from 1 to 65535"),
        ("sftp://backup@nas:65536/srv/zfs", "the port must be a number from 1 to 65535"),
        ("sftp://backup@nas:/srv/zfs", "the port must be a number from 1 to 65535"),
        ("sftp://backup@nas/srv/zfs?mode=fast", "the URL has a '?' or '#' part"),
        ("sftp://backup@nas/srv/zfs#week", "the URL has a '?' or '#' part"),
        ("file:///srv/zfs#week", "the URL has a '?' or '#' part"),
    ],
)
def test_a_port_or_url_part_that_would_be_guessed_at_is_refused(
    cli: Cli, url: str, says: str
) -> None:
    line = one_error(cli("config", ZFS_OFFSITE_TARGET__URL=url))
    assert line.startswith(f"error: setting target.url (env ZFS_OFFSITE_TARGET__URL): {says}")


def test_a_file_setting_that_is_not_a_file_says_what_it_is(
    cli: Cli, sshd: SshServer, sftp_dir: Path, tmp_path: Path
) -> None:
    sftp = cli.with_env(
        ZFS_OFFSITE_TARGET__URL=f"sftp://{sshd.user}@127.0.0.1:{sshd.port}{sftp_dir}",
        ZFS_OFFSITE_TARGET__KEY_FILE=str(sshd.client_key),
        ZFS_OFFSITE_TARGET__KNOWN_HOSTS="/dev/null",
    )
    assert one_error(sftp("verify")) == (
        "error: verify failed: known_hosts file /dev/null is a character device, not a file of "
        "host keys: set target.known_hosts to a file and fill it with "
        f"`ssh-keyscan -p {sshd.port} 127.0.0.1 > /dev/null` and check the key"
    )
    keyless = sftp.with_env(
        ZFS_OFFSITE_TARGET__KNOWN_HOSTS=str(sshd.known_hosts),
        ZFS_OFFSITE_TARGET__KEY_FILE=str(tmp_path),
    )
    assert one_error(keyless("verify")) == (
        f"error: verify failed: ssh key file {tmp_path} is a directory, not a file: "
        "set target.key_file to the private key file"
    )
    assert one_error(cli("config", "--check", "-c", "/dev/null")) == (
        "error: config file /dev/null is a character device, not a TOML file: "
        "fix --config or $ZFS_OFFSITE_CONFIG"
    )
    assert one_error(cli("config", ZFS_OFFSITE_ENCRYPTION__RECIPIENTS_FILE="/dev/null")) == (
        "error: setting encryption.recipients_file (env ZFS_OFFSITE_ENCRYPTION__RECIPIENTS_FILE)"
        ": /dev/null is a character device, not a file: name the file of public keys"
    )


RULE = (
    "cannot name a member: a member name is letters A-Z a-z, digits, space and _ . : + ~ - "
    "(not starting with a dot, not lost+found); `zfs-offsite status` lists the members"
)


@pytest.mark.parametrize(
    "command",
    [
        ("restore", "ünï", "tank/restore/x"),
        ("restore", "ünï", "tank/x", "--to-dir", "/tmp"),
        ("backup", "--member", "ünï"),
        ("plan", "--member", "ünï"),
        ("verify", "--member", "ünï"),
        ("prune", "--member", "ünï"),
        ("drill", "--member", "ünï"),
        ("history", "--member", "ünï"),
    ],
)
def test_a_member_name_none_can_have_is_bad_input_everywhere(
    cli: Cli, command: tuple[str, ...]
) -> None:
    assert one_error(cli(*command)) == f"error: member 'ünï' {RULE}"


def test_member_names_none_can_have_are_one_rule(cli: Cli) -> None:
    for name in (".zfs-offsite-drill", "lost+found", "a/b", "..", "x\ny"):
        assert one_error(cli("restore", name, "tank/x")) == f"error: member {name!r} {RULE}"


def test_restore_of_a_member_the_archive_lacks_is_bad_input(cli: Cli) -> None:
    archive = Path(cli.env["ZFS_OFFSITE_TARGET__URL"].removeprefix("file://"))
    (archive / "alice").mkdir()
    (archive / "bob").symlink_to(archive / "alice")
    assert one_error(cli("restore", "carol", "tank/restore/carol")) == (
        "error: restore failed: member carol: no such member directory on the backup server "
        "(members: alice): check the name"
    )


def test_status_thresholds_that_would_never_fire_are_refused(cli: Cli) -> None:
    for flag, value in (("--warning-hours", "nan"), ("--critical-hours", "inf")):
        assert one_error(cli("status", flag, value)) == (
            f"error: {flag} {value}: must be a number of hours from 0 to 8784"
        )


def test_a_download_directory_that_is_a_file_or_device_is_bad_input(
    sftp_erin: Erin, tmp_path: Path
) -> None:
    plain = tmp_path / "chain.txt"
    plain.write_text("notes\n")
    for where, kind in ((Path("/dev/null"), "a character device"), (plain, "a file")):
        with (
            closing(open_store(sftp_erin.settings.target)) as store,
            pytest.raises(ConfigError) as caught,
        ):
            download_chain(store, "erin", where)
        assert str(caught.value) == (
            f"--to-dir {where} is {kind}, not a directory: name a directory to download the "
            "chain into (created if missing)"
        )
    assert plain.read_text() == "notes\n"


def test_a_server_start_budget_past_any_wait_is_refused(cli: Cli) -> None:
    huge = "9" * 30
    for value, shown in ((huge, huge[:17] + "..."), ("3601", "3601")):
        result = cli("verify", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=value, timeout=120)
        assert one_error(result) == (
            f"error: PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS={shown}: must be whole "
            "seconds from 1 to 3600"
        )


def test_a_deployment_run_with_a_member_name_none_can_have_fails_as_bad_input(
    prefect: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run from the UI or a deployment never passes the CLI: the flows check the same rule."""
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", f"file://{tmp_path}")
    (tmp_path / "alice").mkdir()
    runs = {
        "restore": lambda: restore_flow(member="ünï", destination="tank/x", return_state=True),
        "verify": lambda: verify_flow(members=["ünï"], return_state=True),
        "prune": lambda: prune_flow(members=["ünï"], return_state=True),
    }
    for job, run in runs.items():
        error = run().result(raise_on_failure=False)
        assert isinstance(error, ConfigError), (job, error)
        where = "member" if job == "restore" else "parameter members:"
        assert str(error) == f"{where} 'ünï' {RULE}"


DATASET_RULE = (
    "is not a dataset ZFS can create: write pool/path, e.g. tank/restore/alice (letters, "
    "digits, space and _ . : -; no @, # or empty part)"
)


def test_a_restore_destination_zfs_cannot_create_is_bad_input(
    cli: Cli, prefect: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for destination in ("tank/alice@s1", "tank//alice", "alice", "tank/ünï", "tank/a#b"):
        assert one_error(cli("restore", "alice", destination)) == (
            f"error: destination {destination!r} {DATASET_RULE}"
        )
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", f"file://{tmp_path}")
    error = restore_flow(member="alice", destination="tank/x@y", return_state=True).result(
        raise_on_failure=False
    )
    assert isinstance(error, ConfigError)
    assert str(error) == f"parameter destination: 'tank/x@y' {DATASET_RULE}"


def test_a_selection_that_matches_no_dataset_is_an_error_not_a_quiet_night(
    cli: Cli, pool_factory: Callable[[], Pool], tmp_path: Path
) -> None:
    """A typo in the prefix gave an empty table and exit 0, night after night."""
    pool = pool_factory()
    create_member(pool.name, "erin")
    typo = cli.with_env(
        ZFS_OFFSITE_SOURCE__POOL=pool.name, ZFS_OFFSITE_SOURCE__DATASET_PREFIX="elabsf-"
    )
    says = (
        f"no dataset of pool {pool.name} is selected by source.dataset_prefix ('elabsf-' below "
        f"{pool.name}): nothing would be backed up; check the setting against "
        f"`zfs list -r {pool.name}`"
    )
    assert one_error(typo("plan")) == f"error: {says}"
    backup = typo("backup")
    assert backup.code != 0, backup.output
    assert says in backup.output and "Traceback" not in backup.output
    archive = tmp_path / "archive"
    assert [p.name for p in archive.iterdir() if not p.name.startswith(".")] == []
    right = cli.with_env(ZFS_OFFSITE_SOURCE__POOL=pool.name)
    assert right("plan").code == 0
