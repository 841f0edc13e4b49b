"""The retention policy grammar, on its own: settings validate with it and nothing else."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from zfs_offsite.values.policy import parse_age, parse_policy


def test_every_unit_parses_with_only_the_grammar_imported() -> None:
    # A fresh interpreter: in this one other modules are already imported.
    code = (
        "from zfs_offsite.values.policy import parse_policy\n"
        "rules = parse_policy('hourly 48h, daily 7d, weekly 8w, monthly 12m, yearly 2y')\n"
        "print([r.age.days for r in rules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 7, 56, 372, 732]"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("daily 99999999999999y", "'daily 99999999999999y': the age must be at most 100 years"),
        ("daily 101y", "'daily 101y': the age must be at most 100 years"),
        ("hourly 878401h", "'hourly 878401h': the age must be at most 100 years"),
        ("daily 0d", "'daily 0d': the age must be at least 1"),
        ("daily " + "9" * 5000 + "d", "'daily 9999999999999999999999999999999...': the age"),
    ],
)
def test_ages_past_any_date_are_refused_in_one_line(text: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_policy(text)
    assert str(caught.value).startswith(says)
    assert "\n" not in str(caught.value)


def test_the_longest_age_is_100_years_in_any_unit() -> None:
    for text in ("100y", "1180m", "5228w", "36600d", "878400h"):
        assert parse_age(text) <= timedelta(days=36600)
    assert parse_policy("yearly 100y")[0].age == timedelta(days=36600)
    assert parse_age("007d") == timedelta(days=7)
    with pytest.raises(ValueError, match=r"^'7 days': not an age"):
        parse_age("7 days")
