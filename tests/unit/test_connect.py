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


def test_the_host_label_is_the_nas_short_name_or_its_address() -> None:
    from zfs_offsite.connect import host_label

    def label(url: str) -> str:
        return host_label(load_settings(source={"ssh_url": url}))

    assert label("ssh://backup@nas.lan:22") == "nas"
    assert label("ssh://backup@NAS-2.example.org") == "nas-2"
    assert label("ssh://backup@192.168.1.5:2222") == "192-168-1-5"
    assert label("ssh://backup@[fd00::5]:22") == "fd00-5"
