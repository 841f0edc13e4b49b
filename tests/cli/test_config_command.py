"""`zfs-offsite config` through the installed entry point, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from zfs_offsite.settings import ENV_PREFIX

ZFS_OFFSITE = Path(sys.executable).parent / "zfs-offsite"
DEMO_ORIGIN = (
    "config: none found (looked for ./zfs-offsite.toml, /etc/zfs-offsite.toml, "
    "$ZFS_OFFSITE_CONFIG unset): using the embedded demo defaults "
    "(pool zfs-offsite-demo, target file:///var/tmp/zfs-offsite-demo/archive)"
)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    work = tmp_path / "cwd"
    work.mkdir()
    return work


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a clean environment: no ZFS_OFFSITE_* from the test runner."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
    result = subprocess.run(
        [str(ZFS_OFFSITE), "config", *args],
        cwd=cwd,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_shows_each_setting_with_its_source_secrets_redacted(cwd: Path, tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[target]\nurl = "sftp://backup@nas/~/b"\nkey_passphrase = "hunter2"\n')
    result = run(cwd, "-c", str(config), ZFS_OFFSITE_RETRIES="5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"config: {config}"
    shown = {line.split(" = ")[0].strip(): line.split(" = ", 1)[1] for line in lines[1:]}
    assert shown["target.url"].split() == ['"sftp://backup@nas/~/b"', f"({config}:2)"]
    assert shown["target.key_passphrase"].split() == ["********", f"({config}:3)"]
    assert shown["retries"].split() == ["5", "(env", "ZFS_OFFSITE_RETRIES)"]
    assert shown["source.pool"].split() == ['"zfs-offsite-demo"', "(default)"]
    assert "hunter2" not in result.stdout + result.stderr


def test_check_prints_only_the_verdict(cwd: Path, tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[source]\npool = "tank"\n')
    result = run(cwd, "--check", "-c", str(config))
    assert (result.returncode, result.stdout, result.stderr) == (0, f"config ok: {config}\n", "")


def test_check_loads_the_identity_file_where_one_is_set(cwd: Path, tmp_path: Path) -> None:
    key = tmp_path / "restore.key"
    config = tmp_path / "z.toml"
    config.write_text(f'[encryption]\nidentity_file = "{key}"\n')
    missing = run(cwd, "--check", "-c", str(config))
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == (
        f"error: setting encryption.identity_file: {key} does not exist: name the identity file "
        "written by zfs-offsite keygen (or age-keygen)\n"
    )
    made = subprocess.run([str(ZFS_OFFSITE), "keygen", str(key)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    key.chmod(0o640)
    loose = run(cwd, "--check", "-c", str(config))
    assert loose.returncode == 2 and "is accessible by others (mode 0640): chmod 600" in (
        loose.stderr
    )
    key.chmod(0o600)
    good = run(cwd, "--check", "-c", str(config))
    assert (good.returncode, good.stdout) == (0, f"config ok: {config}\n")
    assert key.read_text().splitlines()[-1] not in good.stdout + good.stderr


def test_nested_typo_fails_with_its_line(cwd: Path, tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('# archive\n[target]\nulr = "file:///srv/archive"\n')
    result = run(cwd, "--check", "-c", str(config))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: unknown setting target.ulr ({config}:3): did you mean target.url?"
    ]


def test_every_error_at_once_env_and_file_told_apart(cwd: Path, tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[compression]\nalgorithm = "gzip"\nthreads = 0\n')
    result = run(
        cwd, "-c", str(config), ZFS_OFFSITE_TARGET_URL="file:///srv", ZFS_OFFSITE_MAX_PARALLEL="x"
    )
    assert result.returncode == 2
    assert result.stdout.splitlines() == [f"config: {config}"]
    assert result.stderr.splitlines() == [
        "error: unknown variable ZFS_OFFSITE_TARGET_URL (env): "
        "did you mean ZFS_OFFSITE_TARGET__URL?",
        f"error: setting compression.threads ({config}:3): "
        "must be a number of threads from 1 to 64",
        "error: setting max_parallel (env ZFS_OFFSITE_MAX_PARALLEL): "
        "Input should be a valid integer, unable to parse string as an integer",
    ]


def test_directory_as_config_is_named(cwd: Path, tmp_path: Path) -> None:
    result = run(cwd, "-c", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: config file {tmp_path} is a directory, not a TOML file: "
        "fix --config or $ZFS_OFFSITE_CONFIG"
    ]


def test_no_config_file_says_so_first(cwd: Path) -> None:
    result = run(cwd)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == DEMO_ORIGIN
    checked = run(cwd, "--check")
    assert checked.stdout == DEMO_ORIGIN.replace("config: ", "config ok: ", 1) + "\n"


PULL_EXAMPLE = Path(__file__).resolve().parents[2] / "deployments/zfs-offsite.pull.example.toml"


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def made_key(path: Path) -> Path:
    made = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], capture_output=True
    )
    assert made.returncode == 0, made.stderr
    return path


def edited_example(tmp_path: Path, port: int = 2222) -> tuple[Path, Path, Path]:
    """The pull example as the pull-mode how-to says to edit it: values set, EDIT markers gone."""
    key = made_key(tmp_path / "id_ed25519")
    host_key = made_key(tmp_path / "host_key")
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
    text = PULL_EXAMPLE.read_text()
    text = text.replace("zfs-offsite@nas.example.org:22", f"backup@127.0.0.1:{port}")
    text = text.replace("/var/lib/zfs-offsite/.ssh/id_ed25519", str(key))
    text = text.replace("/var/lib/zfs-offsite/.ssh/known_hosts", str(known))
    text = text.replace("file:///srv/zfs-offsite/archive", f"file://{tmp_path}/archive")
    config = tmp_path / "pull.toml"
    config.write_text(re.sub(r"\s*# EDIT:.*", "", text))
    return config, key, known


def test_check_fails_the_untouched_pull_example_naming_each_line(cwd: Path) -> None:
    text = PULL_EXAMPLE.read_text()
    result = run(cwd, "--check", "-c", str(PULL_EXAMPLE))
    assert (result.returncode, result.stdout) == (2, "")
    errors = result.stderr.splitlines()
    for needle in ("ssh_url =", "pool =", "dataset_prefix =", "url = "):
        line = line_of(text, needle)
        assert f"error: {PULL_EXAMPLE}:{line}: still marked EDIT: set this line's value" in (
            " ".join(e for e in errors if e.startswith(f"error: {PULL_EXAMPLE}:{line}:"))
        )
    ssh_url_line = f"{PULL_EXAMPLE}:{line_of(text, 'ssh_url =')}"
    assert (
        f"error: setting source.ssh_url ({ssh_url_line}): nas.example.org is the example's "
        "placeholder host: name the real one"
    ) in errors
    key_line = f"{PULL_EXAMPLE}:{line_of(text, 'key_file =')}"
    assert (
        f"error: setting source.key_file ({key_line}): ssh key file "
        "/var/lib/zfs-offsite/.ssh/id_ed25519 does not exist: fix source.key_file or create "
        "the key"
    ) in errors
    assert any(
        e.startswith(f"error: setting source.known_hosts ({PULL_EXAMPLE}:")
        and "does not exist: create it with `ssh-keyscan -p 22 nas.example.org" in e
        for e in errors
    )


def test_check_passes_the_pull_example_once_edited_as_the_doc_says(
    cwd: Path, tmp_path: Path
) -> None:
    config, key, known = edited_example(tmp_path)
    good = run(cwd, "--check", "-c", str(config))
    assert (good.returncode, good.stdout, good.stderr) == (0, f"config ok: {config}\n", "")

    key.chmod(0o640)
    loose = run(cwd, "--check", "-c", str(config))
    assert loose.returncode == 2
    assert f"is accessible by others (mode 0640), which OpenSSH refuses: chmod 600 {key}" in (
        loose.stderr
    )
    key.chmod(0o400)
    assert run(cwd, "--check", "-c", str(config)).returncode == 0

    other_port = known.read_text().replace("]:2222 ", "]:2200 ")
    known.write_text(other_port)
    unknown = run(cwd, "--check", "-c", str(config))
    assert unknown.returncode == 2
    line = line_of(config.read_text(), "known_hosts =")
    assert unknown.stderr.splitlines() == [
        f"error: setting source.known_hosts ({config}:{line}): {known} holds no key for "
        f"[127.0.0.1]:2222: add it with `ssh-keyscan -p 2222 127.0.0.1 >> {known}` and check "
        "the key"
    ]


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_check_refuses_a_key_owned_by_another_user(cwd: Path, tmp_path: Path) -> None:
    config, key, _known = edited_example(tmp_path)
    os.chown(key, 65534, 65534)  # nobody
    result = run(cwd, "--check", "-c", str(config))
    assert result.returncode == 2
    assert f"{key} is owned by uid 65534, not by this user (uid 0)" in result.stderr


def test_check_fails_the_untouched_push_example_too(cwd: Path) -> None:
    example = PULL_EXAMPLE.with_name("zfs-offsite.example.toml")
    text = example.read_text()
    result = run(cwd, "--check", "-c", str(example))
    assert (result.returncode, result.stdout) == (2, "")
    url_line = f"{example}:{line_of(text, 'url = ')}"
    assert f"error: {url_line}: still marked EDIT" in result.stderr
    assert (
        f"error: setting target.url ({url_line}): backup.example.org is the example's "
        "placeholder host: name the real one"
    ) in result.stderr.splitlines()


def test_an_s3_target_shows_its_section_and_no_aws_secret(cwd: Path, tmp_path: Path) -> None:
    secret, key_id = "wJalrXUtnFEMIK7MDENGbPxRfiCY", "AKIAEXAMPLEKEYID"
    config = tmp_path / "z.toml"
    config.write_text(
        '[target]\nurl = "s3://zfs-backups/lab"\n'
        '[target.s3]\nendpoint_url = "http://127.0.0.1:7480"\nprofile = "backup"\n'
    )
    result = run(
        cwd,
        "-c",
        str(config),
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_SESSION_TOKEN=secret + "token",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        re.match(r'target\.url +=  ?"s3://zfs-backups/lab" +\(.*z\.toml:2\)', x) for x in lines
    )
    assert any(re.match(r'target\.s3\.profile += "backup" +\(.*z\.toml:5\)', x) for x in lines)
    assert secret not in result.stdout + result.stderr
    assert key_id not in result.stdout + result.stderr
