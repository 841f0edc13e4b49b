"""zfs-offsite: ship ZFS snapshots off-site as compressed files.

The domain core: importable and testable without Prefect.
"""

__version__ = "0.1.0"
