#!/usr/bin/env bash
# Installs what zfs-offsite and its tests need on Debian (as root), then the Python env.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-system.sh: run as root (it installs Debian packages and starts zfs-fuse)" >&2
    exit 1
fi

packages=(zfs-fuse openssh-server openssh-client zstd gzip pigz python3 python3-venv procps)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts services on install; this project runs its own zfs-fuse and a private sshd.
systemctl disable --now ssh.service >/dev/null 2>&1 || true

if ! command -v uv >/dev/null 2>&1; then
    if [ ! -x /opt/zfs-offsite-uv/bin/uv ]; then
        python3 -m venv /opt/zfs-offsite-uv
        /opt/zfs-offsite-uv/bin/pip install -q uv
    fi
    export PATH="/opt/zfs-offsite-uv/bin:$PATH"
fi
uv sync --frozen --quiet
