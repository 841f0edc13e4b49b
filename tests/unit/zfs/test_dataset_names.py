"""The dataset-name rule restore checks a destination with before anything is read."""

from __future__ import annotations

import pytest

from zfs_offsite.errors import ConfigError
from zfs_offsite.zfs.model import check_dataset_name


@pytest.mark.parametrize(
    "name", ["tank/restore/alice", "Datenspeicher/a b", "t/x.y:z_1-2", "tank/" + "a" * 250]
)
def test_names_zfs_accepts_pass(name: str) -> None:
    assert check_dataset_name(name, "destination") == name


@pytest.mark.parametrize(
    "name",
    [
        "tank",
        "tank/",
        "/tank/x",
        "tank//x",
        "tank/x@s1",
        "tank/x#b",
        "tank/ünï",
        "1tank/x",
        "tank/../x",
        "tank/" + "a" * 251,
        "",
    ],
)
def test_names_zfs_refuses_are_one_line(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_dataset_name(name, "destination")
    assert str(caught.value).startswith("destination ")
    assert "is not a dataset ZFS can create: write pool/path" in str(caught.value)
