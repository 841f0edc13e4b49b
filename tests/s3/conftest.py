"""The S3 tier: a real Ceph RGW started by the project's own code (tests/support/rgw.py).

Its fixtures, `rgw` (one store per session) and `bucket` (a new one per test),
live in tests/support/rgw_fixtures.py, a plugin of tests/conftest.py, so the
fault tier (tests/faults) shares the same store.
"""
