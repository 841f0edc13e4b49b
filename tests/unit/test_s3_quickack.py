"""The TCP_QUICKACK hook goes on one client's connections only, or nowhere.

Its effect (no 40 ms delayed-ACK wait per small answer) is measured on the real
RGW in tests/s3/test_s3_store.py; here: it touches no other client, and a
botocore whose HTTP session is laid out otherwise is left as it is.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.awsrequest import AWSHTTPConnectionPool

from zfs_offsite.remote import s3_quickack
from zfs_offsite.remote.s3_quickack import quick_acks


def client() -> object:
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s")
    return session.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")


def pools(c: object) -> dict[str, Any]:
    return c._endpoint.http_session._manager.pool_classes_by_scheme  # type: ignore[attr-defined]


def test_only_the_given_client_acks_at_once() -> None:
    ours, other = client(), client()
    assert quick_acks(ours) is True
    assert pools(ours)["http"].ConnectionCls is s3_quickack._QuickAckConnection
    assert pools(ours)["https"].ConnectionCls is s3_quickack._QuickAckHttpsConnection
    assert pools(other)["http"] is AWSHTTPConnectionPool  # never patched globally


def test_an_unknown_botocore_layout_is_left_alone() -> None:
    class Elsewhere:
        _endpoint = None

    assert quick_acks(Elsewhere()) is False
