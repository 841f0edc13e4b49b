"""Connections built from settings: which SSH client a target uses."""

from __future__ import annotations

from zfs_offsite.connect import uses_openssh_client
from zfs_offsite.settings import load_settings
from zfs_offsite.transport.openssh import available as openssh_available


def test_both_clients_take_a_passphrase() -> None:
    target = {"url": "sftp://u@h/x", "key_passphrase": "secret"}
    settings = load_settings(target=target | {"client": "openssh"})
    assert uses_openssh_client(settings.target) is True
    auto = load_settings(target=target)
    assert uses_openssh_client(auto.target) is openssh_available()
    assert (
        uses_openssh_client(load_settings(target=target | {"client": "paramiko"}).target) is False
    )
