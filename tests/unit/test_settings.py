from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from zfs_offsite.archive.names import Compression
from zfs_offsite.connect import target_endpoint
from zfs_offsite.errors import ConfigError
from zfs_offsite.settings import (
    Settings,
    SettingsError,
    config_origin,
    explain_settings,
    load_settings,
    parse_target_url,
)
from zfs_offsite.settings.origins import section_model
from zfs_offsite.settings.sources import toml_key_lines

EXAMPLE = Path(__file__).parents[2] / "examples" / "seed-deployment.toml"
DEMO_ORIGIN = (
    "config: none found (looked for ./zfs-offsite.toml, /etc/zfs-offsite.toml, "
    "$ZFS_OFFSITE_CONFIG unset): using the embedded demo defaults "
    "(pool zfs-offsite-demo, target file:///var/tmp/zfs-offsite-demo/archive)"
)


# No ZFS_OFFSITE_* variable, .env or ./zfs-offsite.toml from the caller leaks in.
pytestmark = pytest.mark.usefixtures("clean_settings_environment")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def errors_of(config: Path | None = None, **overrides: object) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(config, **overrides)
    return list(caught.value.lines)


def test_defaults_are_the_demo() -> None:
    settings = load_settings()
    assert settings.source.pool == "zfs-offsite-demo"
    assert settings.target.parsed.scheme == "file"
    assert settings.compression.algorithm is Compression.ZSTD


def test_seed_example_reproduces_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(EXAMPLE)
    assert settings.source.pool == "Datenspeicher"
    assert settings.source.dataset_prefix == "elabfs-"
    assert settings.compression.algorithm is Compression.GZIP
    url = settings.target.parsed
    assert (url.user, url.host, url.path) == (
        "zfs_snap_backup",
        "etha.cpi.imtek.uni-freiburg.de",
        "zfs-backups",
    )
    assert settings.retention.rules is not None and len(settings.retention.rules) == 4
    assert settings.full.after_days == 30 and settings.scratch_dataset.endswith("-drill")


def test_bad_policy_in_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "z.toml"
    config.write_text('[retention]\npolicy = "weekly 12 weeks"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"setting retention.policy ({config}:2): ")
    assert "'weekly 12 weeks' is not a rule" in message and "\n" not in message


def test_environment_overrides_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_CONFIG", str(EXAMPLE))
    monkeypatch.setenv("ZFS_OFFSITE_COMPRESSION__ALGORITHM", "zstd")
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__KEY_PASSPHRASE", "hunter2")
    settings = load_settings()
    assert settings.compression.algorithm is Compression.ZSTD
    assert "hunter2" not in repr(settings)
    assert target_endpoint(settings.target).passphrase == "hunter2"
    assert "hunter2" not in repr(target_endpoint(settings.target))


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        (
            "ZFS_OFFSITE_TARGET__URL",
            "ftp://x/y",
            "setting target.url (env ZFS_OFFSITE_TARGET__URL): the target URL must start with",
        ),
        ("ZFS_OFFSITE_TARGET__URL", "sftp://host/path", "needs user and host"),
        ("ZFS_OFFSITE_COMPRESSION__ALGORITHM", "bzip2", "compression.algorithm"),
        ("ZFS_OFFSITE_SOURCE__SELECT_PROPERTY", "backup", "user property with a colon"),
        ("ZFS_OFFSITE_MAX_PARALLEL", "0", "max_parallel"),
    ],
)
def test_bad_settings_fail_with_one_line(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does-not-exist\.toml does not exist"):
        load_settings(tmp_path / "does-not-exist.toml")


def test_target_urls() -> None:
    assert parse_target_url("sftp://u@h/~/zfs-backups").path == "zfs-backups"
    assert parse_target_url("sftp://u@h:2222/srv/b").port == 2222
    assert parse_target_url("file:///srv/b").path == "/srv/b"
    assert parse_target_url("sftp://u@h/srv/b%23x%3Fy").path == "/srv/b#x?y"
    assert parse_target_url("sftp://u@h:65535/srv/b").port == 65535


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("sftp://u:s3cr3t@h/srv/b", "the URL holds a password, which this tool refuses"),
        ("sftp://u:@h/srv/b", "the URL holds a password, which this tool refuses"),
        ("sftp://u:s3cr3t@h:0/srv/b", "the URL holds a password, which this tool refuses"),
        ("sftp://u@h:0/srv/b", "the port must be a number from 1 to 65535 (or none for 22)"),
        ("sftp://u@h:99999/srv/b", "the port must be a number from 1 to 65535 (or none for 22)"),
        ("sftp://u@h:x/srv/b", "the port must be a number from 1 to 65535 (or none for 22)"),
        ("sftp://u@h:/srv/b", "the port must be a number from 1 to 65535 (or none for 22)"),
        ("sftp://u@h/srv/b?x=1", "the URL has a '?' or '#' part"),
        ("sftp://u@h/srv/b?", "the URL has a '?' or '#' part"),
        ("file:///srv/b#x", "the URL has a '?' or '#' part"),
    ],
)
def test_target_url_parts_that_would_be_dropped_or_guessed_are_refused(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(says)) as caught:
        parse_target_url(url)
    assert "s3cr3t" not in str(caught.value)


def test_source_ssh_url_has_the_target_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for url, says in (
        ("ssh://root:s3cr3t@nas", "the URL holds a password, which this tool refuses"),
        ("ssh://root@nas:0", "the port must be a number from 1 to 65535"),
        ("ssh://root@nas?x", "the URL has a '?' or '#' part"),
        ("ssh://root@nas/tank", "must look like ssh://user@nas:22"),
    ):
        monkeypatch.setenv("ZFS_OFFSITE_SOURCE__SSH_URL", url)
        (line,) = errors_of()
        assert line.startswith(f"setting source.ssh_url (env ZFS_OFFSITE_SOURCE__SSH_URL): {says}")
        assert "s3cr3t" not in line


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
@pytest.mark.parametrize(
    ("name", "low", "high"),
    [
        ("retry_delay", "0", "3600"),
        ("target.timeout", "1", "3600"),
        ("lock.wait_seconds", "0", "86400"),
        ("lock.stale_seconds", "120", "86400"),
        ("full.after_days", "more than 0 and at most", "3660"),
        ("retention.stale_partial_hours", "1", "8784"),
        ("retention.resumable_partial_days", "1", "366"),
    ],
)
def test_float_settings_refuse_what_is_not_finite_and_state_their_range(
    monkeypatch: pytest.MonkeyPatch, name: str, low: str, high: str, value: str
) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_" + name.upper().replace(".", "__"), value)
    (line,) = errors_of()
    span = f"{low} {high}" if low.startswith("more") else f"from {low} to {high}"
    assert line.startswith(f"setting {name} (env ZFS_OFFSITE_")
    assert line.endswith(f" {span}"), line


def test_number_settings_accept_their_whole_range() -> None:
    settings = load_settings(
        retry_delay=3600,
        target={"timeout": 1},
        lock={"wait_seconds": 0, "stale_seconds": 86400},
        full={"after_days": 0.5, "after_incrementals": 100_000, "max_per_night": 10_000},
    )
    assert (settings.retry_delay, settings.target.timeout, settings.full.after_days) == (
        3600,
        1,
        0.5,
    )
    assert errors_of(full={"after_incrementals": 100_001}) == [
        "setting full.after_incrementals (argument): must be a number of incrementals "
        "from 1 to 100000"
    ]


def test_a_config_file_that_is_a_device_says_so() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(Path("/dev/null"))
    assert str(caught.value) == (
        "config file /dev/null is a character device, not a TOML file: "
        "fix --config or $ZFS_OFFSITE_CONFIG"
    )


# -- unknown keys and variables -------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        (
            '[target]\nulr = "file:///srv/archive"\n',
            "unknown setting target.ulr ({}:2): did you mean target.url?",
        ),
        (
            '# seed\n[source]\npool = "tank"\ndataset_prefx = "x-"\n',
            "unknown setting source.dataset_prefx ({}:4): did you mean source.dataset_prefix?",
        ),
        (
            '[retention]\npolcy = "all 7d"\n',
            "unknown setting retention.polcy ({}:2): did you mean retention.policy?",
        ),
        (
            "[compression]\n'algoritm' = \"gzip\"\n",
            "unknown setting compression.algoritm ({}:2): did you mean compression.algorithm?",
        ),
        ("max_paralel = 3\n", "unknown setting max_paralel ({}:1): did you mean max_parallel?"),
        (
            '[target]\npool = "tank"\n',
            "unknown setting target.pool ({}:2): did you mean source.pool?",
        ),
        (
            'target.ulr = "file:///x"\n',
            "unknown setting target.ulr ({}:1): did you mean target.url?",
        ),
        (
            'target = { url = "file:///x", zzz = 1 }\n',
            "unknown setting target.zzz ({}:1): [target] takes url, key_file, known_hosts, "
            "key_passphrase, timeout, client, bandwidth, s3, umask",
        ),
        (
            "[nosuch]\nx = 1\n",
            "unknown setting nosuch ({}:1): the top level takes source, target, compression, "
            "encryption, drill, verify, retention, full, lock, protect_base, max_parallel, "
            "retries, retry_delay",
        ),
    ],
)
def test_unknown_toml_key_is_an_error_with_its_line(tmp_path: Path, toml: str, line: str) -> None:
    config = write(tmp_path / "z.toml", toml)
    assert errors_of(config) == [line.format(config)]


def test_every_section_rejects_unknown_keys(tmp_path: Path) -> None:
    """Generic over the model: a section added later is as strict as the rest."""
    sections = [n for n, f in Settings.model_fields.items() if section_model(f.annotation)]
    assert len(sections) >= 6
    text = "".join(f"\n[{name}]\nbogus_key = 1\n" for name in sections)
    config = write(tmp_path / "z.toml", text)
    lines = errors_of(config)
    assert [line.split(" (")[0] for line in lines] == [
        f"unknown setting {name}.bogus_key" for name in sections
    ]
    assert all(f"({config}:" in line for line in lines)


def test_every_section_model_forbids_extra_keys_when_built_directly() -> None:
    """Code that builds a section itself (not through load_settings) cannot drop a typo either."""
    models = [Settings] + [
        m for f in Settings.model_fields.values() if (m := section_model(f.annotation))
    ]
    for model in models:
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            model.model_validate({"bogus_key": 1})


@pytest.mark.parametrize(
    ("name", "line"),
    [
        (
            "ZFS_OFFSITE_TARGET_URL",
            "unknown variable ZFS_OFFSITE_TARGET_URL (env): did you mean ZFS_OFFSITE_TARGET__URL?",
        ),
        (
            "ZFS_OFFSITE_TARGET__ULR",
            "unknown variable ZFS_OFFSITE_TARGET__ULR (env): did you mean ZFS_OFFSITE_TARGET__URL?",
        ),
        (
            "ZFS_OFFSITE_TARGET__URL__X",
            "unknown variable ZFS_OFFSITE_TARGET__URL__X (env): did you mean "
            "ZFS_OFFSITE_TARGET__URL?",
        ),
        (
            "ZFS_OFFSITE_CONFG",
            "unknown variable ZFS_OFFSITE_CONFG (env): did you mean ZFS_OFFSITE_CONFIG?",
        ),
        (
            "ZFS_OFFSITE_NOTHING_LIKE_IT",
            "unknown variable ZFS_OFFSITE_NOTHING_LIKE_IT (env): no such setting; names are "
            "ZFS_OFFSITE_<KEY> or ZFS_OFFSITE_<SECTION>__<KEY>, e.g. ZFS_OFFSITE_TARGET__URL",
        ),
    ],
)
def test_unknown_environment_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch, name: str, line: str
) -> None:
    monkeypatch.setenv(name, "file:///srv/archive")
    assert errors_of() == [line]


def test_config_variable_is_not_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_CONFIG", str(EXAMPLE))
    assert load_settings().source.pool == "Datenspeicher"


def test_whole_section_from_json_variable_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_TARGET", '{"url": "file:///x", "tiemout": 3}')
    assert errors_of() == [
        "unknown setting target.tiemout (env ZFS_OFFSITE_TARGET): did you mean target.timeout?"
    ]
    monkeypatch.setenv("ZFS_OFFSITE_TARGET", '{"url": "file:///x", "timeout": 3}')
    assert load_settings().target.timeout == 3
    monkeypatch.setenv("ZFS_OFFSITE_SOURCE__DATASETS", "tank/a")
    monkeypatch.setenv("ZFS_OFFSITE_TARGET", "file:///x")
    assert errors_of() == [
        "setting source.datasets (env ZFS_OFFSITE_SOURCE__DATASETS): not valid JSON "
        """(Expecting value); e.g. ZFS_OFFSITE_SOURCE__DATASETS='["a", "b"]'""",
        "setting target (env ZFS_OFFSITE_TARGET): not valid JSON (Expecting value); "
        "or set one key: ZFS_OFFSITE_TARGET__<KEY>",
    ]
    monkeypatch.setenv("ZFS_OFFSITE_TARGET", '{"url": "file:///x"}')
    monkeypatch.setenv("ZFS_OFFSITE_SOURCE__DATASETS", '["tank/a"]')
    assert load_settings().source.datasets == ["tank/a"]


def test_dotenv_keys_are_checked_and_attributed(tmp_path: Path) -> None:
    write(
        Path(".env"),
        "# local overrides\nPREFECT_API_URL=http://x\nZFS_OFFSITE_TARGET_URL=file:///srv\n"
        "export ZFS_OFFSITE_RETRIES=-1\n",
    )
    assert errors_of() == [
        "unknown variable ZFS_OFFSITE_TARGET_URL (.env:3): did you mean ZFS_OFFSITE_TARGET__URL?",
        "setting retries (.env:4): must be a number of retries from 0 to 20",
    ]


# -- all errors at once, each with its real source ------------------------------------------


def test_all_errors_at_once_each_naming_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "z.toml",
        'max_parallel = 2\n\n[target]\nurl = "sftp://u@h/~/b"\ntimeout = 0\n'
        '[compression]\nalgorithm = "bzip2"\n',
    )
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", "ftp://x/y")  # wins over the file's url
    monkeypatch.setenv("ZFS_OFFSITE_SOURCE_POOL", "tank")
    with pytest.raises(SettingsError) as caught:
        load_settings(config)
    assert str(caught.value).splitlines() == [
        "the settings have 4 errors:",
        "unknown variable ZFS_OFFSITE_SOURCE_POOL (env): did you mean ZFS_OFFSITE_SOURCE__POOL?",
        "setting target.url (env ZFS_OFFSITE_TARGET__URL): "
        "the target URL must start with sftp://, file:// or s3://",
        f"setting target.timeout ({config}:5): must be a number of seconds from 1 to 3600",
        f"setting compression.algorithm ({config}:7): Input should be 'gzip' or 'zstd'",
    ]


def test_bad_argument_is_attributed_to_the_argument() -> None:
    assert errors_of(target={"timeout": -1}, drill={"cycle_runz": 2}) == [
        "unknown setting drill.cycle_runz (argument): did you mean drill.cycle_runs?",
        "setting target.timeout (argument): must be a number of seconds from 1 to 3600",
    ]


def test_verify_cycle_is_a_positive_number_of_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().verify.cycle_runs == 4
    monkeypatch.setenv("ZFS_OFFSITE_VERIFY__CYCLE_RUNS", "0")
    assert errors_of() == [
        "setting verify.cycle_runs (env ZFS_OFFSITE_VERIFY__CYCLE_RUNS): must be a number of "
        "verify runs from 1 to 366, e.g. 4 (every file is read back at least every 4th run; "
        "1: every file every run)"
    ]
    monkeypatch.setenv("ZFS_OFFSITE_VERIFY__CYCLE_RUNS", "367")
    assert errors_of()[0].endswith(
        "must be a number of verify runs from 1 to 366, e.g. 4 "
        "(every file is read back at least every 4th run; 1: every file every run)"
    )
    monkeypatch.setenv("ZFS_OFFSITE_VERIFY__CYCLE_RUNS", "366")
    assert load_settings().verify.cycle_runs == 366


def test_config_directory_is_named_as_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value) == (
        f"config file {tmp_path} is a directory, not a TOML file: "
        "fix --config or $ZFS_OFFSITE_CONFIG"
    )


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    config = write(tmp_path / "z.toml", '[target]\nurl = "file:///x\n')
    (line,) = errors_of(config)
    assert line.startswith(f"config file {config} is not valid TOML: ")
    assert "line 2" in line


def test_toml_key_lines_skip_multiline_strings() -> None:
    text = 'a = 1\ndoc = """\nb = 2\n"""\n[t.u]\n"c" . d = 3\n[[arr]]\ne = 4\n'
    assert toml_key_lines(text) == {
        ("a",): 1,
        ("doc",): 2,
        ("t", "u"): 5,
        ("t", "u", "c", "d"): 6,
        ("arr",): 7,
        ("arr", "e"): 8,
    }


# -- explain_settings and config_origin -----------------------------------------------------


def test_explain_names_each_source_and_redacts_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "z.toml",
        '[target]\nurl = "sftp://u@h/~/b"\nkey_passphrase = "hunter2"\n',
    )
    monkeypatch.setenv("ZFS_OFFSITE_SOURCE__KEY_PASSPHRASE", "swordfish")
    write(Path(".env"), "ZFS_OFFSITE_MAX_PARALLEL=3\n")
    shown = {line.name: (line.value, line.source) for line in explain_settings(config)}
    assert shown["target.url"] == ('"sftp://u@h/~/b"', f"{config}:2")
    assert shown["target.key_passphrase"] == ("********", f"{config}:3")
    assert shown["source.key_passphrase"] == ("********", "env ZFS_OFFSITE_SOURCE__KEY_PASSPHRASE")
    assert shown["max_parallel"] == ("3", ".env:1")
    assert shown["retries"] == ("3", "default")
    assert shown["source.key_file"] == ("unset", "default")
    assert "hunter2" not in repr(shown) and "swordfish" not in repr(shown)


def test_config_origin_found_named_and_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert config_origin() == DEMO_ORIGIN
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", "file:///srv/archive")
    assert config_origin().endswith(
        "using the environment and the embedded defaults "
        "(pool zfs-offsite-demo, target file:///srv/archive)"
    )
    monkeypatch.delenv("ZFS_OFFSITE_TARGET__URL")
    local = write(Path("zfs-offsite.toml"), "")
    assert config_origin() == f"config: {local.absolute()}"
    monkeypatch.setenv("ZFS_OFFSITE_CONFIG", str(EXAMPLE))
    assert config_origin() == f"config: {EXAMPLE} (from $ZFS_OFFSITE_CONFIG)"
    assert config_origin(tmp_path / "x.toml") == f"config: {tmp_path / 'x.toml'}"
    assert config_origin(tmp_path) == f"config: {tmp_path}"  # never raises; load reports it


def test_key_in_the_wrong_section_points_at_every_right_one(tmp_path: Path) -> None:
    config = write(tmp_path / "z.toml", 'key_file = "/k"\n')
    assert errors_of(config) == [
        f"unknown setting key_file ({config}:1): did you mean source.key_file or target.key_file?"
    ]


RESUMABLE_ENV = "ZFS_OFFSITE_RETENTION__RESUMABLE_PARTIAL_DAYS"


def test_resumable_partials_wait_a_week_and_no_less_than_dead_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().retention.resumable_partial_days == 7
    monkeypatch.setenv(RESUMABLE_ENV, "0.5")
    assert errors_of() == [
        f"setting retention.resumable_partial_days (env {RESUMABLE_ENV}): "
        "must be a number of days from 1 to 366"
    ]
    monkeypatch.setenv(RESUMABLE_ENV, "2")
    monkeypatch.setenv("ZFS_OFFSITE_RETENTION__STALE_PARTIAL_HOURS", "72")
    assert errors_of() == [
        f"setting retention.resumable_partial_days (env {RESUMABLE_ENV}): "
        "2 days is shorter than retention.stale_partial_hours (72 h): "
        "a resumable upload must be kept at least as long as a dead one"
    ]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "not an octal umask"),
        ("0o744", "takes the owner's own access"),
        ("1777", "not an octal umask"),
        ("89", "not an octal umask"),
    ],
)
def test_a_bad_target_umask_is_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, fragment: str
) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__UMASK", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "target.umask" in str(caught.value)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_target_umask_is_octal_from_toml_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().target.umask == 0o077  # private by default
    config = write(tmp_path / "z.toml", "[target]\numask = 0o027\n")
    assert load_settings(config).target.umask == 0o027
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__UMASK", "007")
    assert load_settings().target.umask == 0o007


@pytest.mark.parametrize("value", ["tank/drill@s1", "tank//drill", "/tank/drill/", "tank"])
def test_drill_scratch_dataset_is_a_dataset_zfs_can_create(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_DRILL__SCRATCH_DATASET", value)
    assert errors_of() == [
        "setting drill.scratch_dataset (env ZFS_OFFSITE_DRILL__SCRATCH_DATASET): must be a "
        "dataset below a pool, e.g. tank/zfs-offsite-drill (letters, digits, space and "
        "_ . : -; no @, # or empty part)"
    ]


def test_a_file_target_that_is_not_a_directory_says_what_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`file:///dev/null` crashed plan and status with a traceback."""
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", "file:///dev/null")
    (line,) = errors_of()
    assert line.startswith("setting target.url (env ZFS_OFFSITE_TARGET__URL): ")
    assert line.endswith(
        "/dev/null is a character device, not a directory: point it at the archive's directory"
    )
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", f"file://{write(tmp_path / 'f', 'x')}")
    assert "is a file, not a directory" in errors_of()[0]
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__URL", f"file://{tmp_path / 'not-yet'}")
    assert load_settings().target.parsed.path == str(tmp_path / "not-yet")  # a first backup


def test_config_shows_the_umask_in_octal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZFS_OFFSITE_TARGET__UMASK", "027")
    (line,) = [s for s in explain_settings() if s.name == "target.umask"]
    assert line.value == "0o027"
