#!/usr/bin/env bash
# Proves the fast tier is hermetic: plain `pytest`, run by a non-root user on a host
# where zfs-offsite is installed, passes. Run as root; scripts/test.sh (hence CI) runs it.
#
# Everything happens in a private mount namespace (unshare -m), so the host is never
# written: /etc is a bind-mounted copy holding what scripts/install.sh installs (the
# example /etc/zfs-offsite.toml, an /etc/default/zfs-offsite naming a Prefect server
# that does not answer) and the user, created in that copy; /var/lib and /tmp are
# private tmpfs, with the service user's home /var/lib/zfs-offsite/.ssh (a known_hosts
# and an ssh config that would mislead any test reading them). The user's files vanish
# with the namespace.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."
user=${OFFSITE_DEV_USER:-zfs-offsite-dev}
limit=60 # seconds: the fast tier's promise (a warning above it: CI machines are busy)

if [ "$(id -u)" -ne 0 ]; then
    echo "fast-tier-as-user.sh: run as root (it makes a mount namespace and a user in it);" \
        "as yourself, plain 'pytest' is the same check without the installed-host files" >&2
    exit 2
fi

if [ "${1:-}" != --inside ]; then
    exec unshare --mount --propagation private "$self" --inside
fi

repo=$(pwd)
mount -t tmpfs -o mode=1777 tmpfs /tmp
cp -a /etc /tmp/etc
mount --bind /tmp/etc /etc
mount -t tmpfs -o mode=755 tmpfs /var/lib

install -m 640 deployments/zfs-offsite.example.toml /etc/zfs-offsite.toml
mkdir -p /etc/default
cat > /etc/default/zfs-offsite <<EOF
OFFSITE_HOME=$repo
OFFSITE_HOST=installed-host
ZFS_OFFSITE_CONFIG=/etc/zfs-offsite.toml
PREFECT_API_URL=http://127.0.0.1:9/api
PREFECT_API_AUTH_STRING=admin:not-for-tests
PREFECT_SERVER_ANALYTICS_ENABLED=false
EOF
chmod 644 /etc/default/zfs-offsite # readable, so a test that reads it would see it

home=/var/lib/zfs-offsite
id "$user" >/dev/null 2>&1 || useradd --system --home-dir "$home" --shell /bin/sh "$user"
mkdir -p "$home/.ssh"
echo "127.0.0.1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfAnInstalledHostNotATest" \
    > "$home/.ssh/known_hosts"
printf 'Host *\n    Port 9\n    User nobody-here\n' > "$home/.ssh/config"
chown -R "$user:" "$home"

# A checkout, or a venv's interpreter (pyenv, uv's pythons), in root's home (0700): this
# namespace's /root shows those folders, and nothing else of root's.
exposed=()
for path in "$repo" "$(readlink -f "$repo/.venv/bin/python")"; do
    case $path in
    /root/?*)
        top=${path#/root/}
        exposed+=("${top%%/*}")
        ;;
    esac
done
if [ "${#exposed[@]}" -gt 0 ]; then
    mkdir /tmp/root-view
    for top in "${exposed[@]}"; do
        [ -d "/tmp/root-hold/$top" ] && continue
        mkdir -p "/tmp/root-hold/$top"
        mount --bind "/root/$top" "/tmp/root-hold/$top"
    done
    chmod 711 /tmp/root-view
    mount --bind /tmp/root-view /root
    for top in "${exposed[@]}"; do
        [ -d "/root/$top" ] && continue
        mkdir "/root/$top"
        mount --bind "/tmp/root-hold/$top" "/root/$top"
    done
fi

if ! runuser -u "$user" -- test -r "$repo/pyproject.toml" -a -x "$repo/.venv/bin/python"; then
    echo "fast-tier-as-user.sh: user $user cannot read $repo or run its .venv:" \
        "put the checkout where other users can read it (e.g. not under /root)" >&2
    exit 2
fi

echo "== plain pytest as $user (uid $(id -u "$user")), /etc with zfs-offsite.toml and" \
    "default/zfs-offsite, HOME=$home"
start=$(date +%s)
status=0
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$home" LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 "$repo/.venv/bin/python" -m pytest -p no:cacheprovider \
    --durations=20 || status=$?
seconds=$(($(date +%s) - start))
echo "== fast tier as $user: ${seconds}s, exit $status"
if [ "$seconds" -gt "$limit" ]; then
    echo "warning: the fast tier took ${seconds}s, over its ${limit}s promise" >&2
fi
exit "$status"
