#!/usr/bin/env bash
# FOR THE DEMO AND THE TESTS ONLY, not for a NAS: installs zfs-fuse (a userspace ZFS
# that must never run beside a real one), an SSH server and the development env.
# On a real NAS use scripts/install.sh (the tool and its run-time needs only).
# Installs what zfs-offsite and its tests need on Debian (as root), then the Python env.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-system.sh: run as root (it installs Debian packages and starts zfs-fuse)" >&2
    exit 1
fi
echo "setup-system.sh: demo/test machine set-up (zfs-fuse, sshd); on a real NAS use scripts/install.sh" >&2

# chromium: the browser smoke test (tests/browser/); postgresql: the operations tier runs
# the Prefect server on a private cluster of its own (tests/operations/); age: the manual
# restore of encrypted files (tests/integration/test_encryption.py runs it).
# ceph-mon ceph-osd radosgw ceph-common: the S3 tier's own single-node Ceph RGW, started as
# plain processes in a temp dir by tests/support/rgw.py (the packages start no daemon: there
# is no /etc/ceph/ceph.conf); rclone: bench/s3_client.py's reference uploader.
# gcc libzstd-dev libssl-dev: `bench.sftp_stream --floor` compiles bench/floor.c.
packages=(zfs-fuse openssh-server openssh-client zstd gzip pigz python3 python3-venv procps
    chromium chromium-driver fonts-liberation postgresql age
    ceph-mon ceph-osd radosgw ceph-common rclone gcc libc6-dev libzstd-dev libssl-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    # Debian starts services on install. The tests run their own zfs-fuse and a private
    # sshd on a free port, so this install starts none (policy-rc.d says no while it
    # runs); a system sshd that was already there is left exactly as it was.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v uv >/dev/null 2>&1; then
    if [ ! -x /opt/zfs-offsite-uv/bin/uv ]; then
        python3 -m venv /opt/zfs-offsite-uv
        /opt/zfs-offsite-uv/bin/pip install -q uv
    fi
    export PATH="/opt/zfs-offsite-uv/bin:$PATH"
fi
uv sync --frozen --quiet
