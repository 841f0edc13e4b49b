"""Reading the host's env file for the Prefect server (pure parts; the CLI's use of it is
tested in test_history_views.py against a real server)."""

from __future__ import annotations

from cli.server_config import parse_env_file, shown_url


def test_the_env_file_is_read_as_systemd_reads_it() -> None:
    text = (
        "# comment\n"
        "#PREFECT_API_URL=http://commented-out:4200/api\n"
        "OFFSITE_HOST=nas1\n"
        'PREFECT_API_URL="http://prefect:4200/api"\n'
        "PREFECT_API_AUTH_STRING='admin:pa ss'\n"
        "not an assignment\n"
    )
    assert parse_env_file(text) == {
        "OFFSITE_HOST": "nas1",
        "PREFECT_API_URL": "http://prefect:4200/api",
        "PREFECT_API_AUTH_STRING": "admin:pa ss",
    }


def test_a_password_in_the_url_is_never_shown() -> None:
    assert shown_url("http://admin:secret@prefect:4200/api") == "http://prefect:4200/api"
    assert shown_url("http://prefect:4200/api") == "http://prefect:4200/api"
