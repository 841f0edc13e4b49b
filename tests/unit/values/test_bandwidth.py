"""The `target.bandwidth` grammar: rates, units, time windows (wrapping midnight), errors."""

from __future__ import annotations

from datetime import time

import pytest

from zfs_offsite.values.bandwidth import Bandwidth, format_rate, parse_bandwidth, parse_rate


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("40MB/s", 40_000_000),
        ("40 MB/s", 40_000_000),
        ("2.5MB/s", 2_500_000),
        ("800KiB/s", 800 * 1024),
        ("800kB/s", 800_000),
        ("800KB/s", 800_000),
        ("1MiB/s", 1_048_576),
        ("1GB/s", 1_000_000_000),
        ("1GiB/s", 1024**3),
        ("100Mbit/s", 12_500_000),
        ("512kbit/s", 64_000),
        ("1Gbit/s", 125_000_000),
        ("20000B/s", 20_000),
    ],
)
def test_units_are_si_or_iec_bytes_or_bits(text: str, rate: int) -> None:
    assert parse_rate(text) == rate
    schedule = parse_bandwidth(text)
    assert schedule.rate_at(time(3, 0)) == rate and schedule.rate_at(time(15, 0)) == rate


@pytest.mark.parametrize("text", ["", "  ", "0", "unlimited", "Unlimited"])
def test_no_limit(text: str) -> None:
    schedule = parse_bandwidth(text)
    assert schedule == Bandwidth() and schedule.unlimited
    assert schedule.rate_at(time(12, 0)) is None
    assert str(schedule) == "unlimited"


def test_window_then_default() -> None:
    schedule = parse_bandwidth("08:00-20:00 10MB/s, 40MB/s")
    assert not schedule.unlimited
    assert schedule.rate_at(time(7, 59, 59)) == 40e6
    assert schedule.rate_at(time(8, 0)) == 10e6  # the start is inside
    assert schedule.rate_at(time(19, 59, 59, 999999)) == 10e6
    assert schedule.rate_at(time(20, 0)) == 40e6  # the end is outside
    assert str(schedule) == "08:00-20:00 10 MB/s, 40 MB/s"


def test_window_wrapping_midnight() -> None:
    schedule = parse_bandwidth("22:00-06:00 100Mbit/s, 08:00-18:00 2MB/s, 5MB/s")
    rates = {h: schedule.rate_at(time(h, 30)) for h in range(24)}
    assert [h for h, r in rates.items() if r == 12.5e6] == [0, 1, 2, 3, 4, 5, 22, 23]
    assert [h for h, r in rates.items() if r == 2e6] == list(range(8, 18))
    assert [h for h, r in rates.items() if r == 5e6] == [6, 7, 18, 19, 20, 21]
    assert schedule.rate_at(time(6, 0)) == 5e6 and schedule.rate_at(time(22, 0)) == 12.5e6


def test_outside_the_windows_is_unlimited_without_a_default() -> None:
    schedule = parse_bandwidth("08:00-20:00 10MB/s")
    assert schedule.rate_at(time(9, 0)) == 10e6 and schedule.rate_at(time(21, 0)) is None
    assert not schedule.unlimited


def test_a_window_may_be_unlimited_and_may_end_at_24() -> None:
    schedule = parse_bandwidth("00:00-07:00 unlimited, 18:00-24:00 unlimited, 1MB/s")
    assert schedule.rate_at(time(3, 0)) is None and schedule.rate_at(time(23, 59)) is None
    assert schedule.rate_at(time(12, 0)) == 1e6
    assert parse_bandwidth("00:00-08:00 unlimited").unlimited


def test_midnight_to_24_is_the_whole_day() -> None:
    schedule = parse_bandwidth("00:00-24:00 1MB/s")
    assert {schedule.rate_at(time(h, 59)) for h in range(24)} == {1e6}
    assert str(schedule) == "00:00-24:00 1 MB/s"


def test_the_highest_limit_is_1_tb_per_second() -> None:
    assert parse_rate("1000GB/s") == 1e12


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("40MBs", "'40MBs' is not a rate: write e.g. 40MB/s or '08:00-20:00 10MB/s, 40MB/s'"),
        ("40", "'40' is not a rate: write e.g. 40MB/s"),
        ("fast", "'fast' is not a rate"),
        ("40Mb/s", "'40Mb/s': Mb/s is ambiguous: write MB/s for bytes or Mbit/s for bits"),
        ("40mb/s", "'40mb/s': mb/s is ambiguous: write MB/s for bytes or Mbit/s for bits"),
        ("40kb/s", "write kB/s for bytes or kbit/s for bits"),
        ("40 furlongs/s", "unknown unit 'furlongs': use B, kB, MB, GB"),
        ("1kB/s", "'1kB/s': the lowest limit is 10 kB/s; write 'unlimited'"),
        ("0MB/s", "the lowest limit is 10 kB/s"),
        ("08:00-20:00", "'08:00-20:00' is not a rate"),
        ("25:00-08:00 1MB/s", "'25:00' is not a time of day: write HH:MM from 00:00 to 24:00"),
        ("8h-20h 1MB/s", "'8h' is not a time of day"),
        ("08:60-20:00 1MB/s", "'08:60' is not a time of day"),
        ("08:00-08:00 1MB/s", "the window is empty: for all day write the rate alone"),
        ("24:00-00:00 1MB/s", "the window is empty"),
        ("1001GB/s", "'1001GB/s': the highest limit is 1 TB/s; write 'unlimited'"),
        ("9" * 400 + "MB/s", "the highest limit is 1 TB/s"),  # read as inf
        ("00:00-06:00 " + "1" * 400 + "kB/s", "the highest limit is 1 TB/s"),
        ("08:00-20:00 0, 1MB/s", "'08:00-20:00 0': write 'unlimited' for a time without a limit"),
        ("1MB/s, 08:00-20:00 2MB/s", "'1MB/s': only the last entry may go without a time window"),
        ("1MB/s, 2MB/s", "only the last entry may go without a time window"),
        ("1MB/s,", "has an empty entry: separate entries with one comma"),
        (
            "08:00-20:00 1MB/s, 19:00-21:00 2MB/s",
            "windows 08:00-20:00 and 19:00-21:00 overlap: give each time of day one rate",
        ),
        ("20:00-09:00 1MB/s, 08:00-10:00 2MB/s", "windows 20:00-09:00 and 08:00-10:00 overlap"),
        ("22:00-02:00 1MB/s, 23:00-01:00 2MB/s", "overlap"),
    ],
)
def test_bad_input_is_one_line_naming_the_entry_and_the_fix(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_bandwidth(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_adjacent_windows_do_not_overlap() -> None:
    schedule = parse_bandwidth("20:00-08:00 5MB/s, 08:00-20:00 1MB/s")
    assert schedule.rate_at(time(8, 0)) == 1e6 and schedule.rate_at(time(20, 0)) == 5e6


def test_rates_read_as_people_write_them() -> None:
    assert format_rate(40e6) == "40 MB/s"
    assert format_rate(2.5e6) == "2.5 MB/s"
    assert format_rate(800 * 1024) == "819 kB/s"
    assert format_rate(None) == "unlimited"
