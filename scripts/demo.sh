#!/usr/bin/env bash
# The demo on embedded defaults: a file-backed pool `zfs-offsite-demo` with three
# members and real data, backed up to file:///var/tmp/zfs-offsite-demo/archive:
# first a full backup, then (after new data and snapshots) an incremental one;
# then it verifies the archive and restores one member, comparing GUIDs.
# It starts from scratch each time: the demo pool and archive are recreated.
# DEMO_POOL and DEMO_DIR choose another pool and directory (defaults zfs-offsite-demo
# and /var/tmp/zfs-offsite-demo), e.g. for a second demo on a shared machine; the demo
# only ever destroys a pool it made (user property zfs-offsite:demo=1) and a directory
# it made (marker file .zfs-offsite-demo inside).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
.venv/bin/python -m tests.support.services zfs-fuse
export PREFECT_SERVER_ANALYTICS_ENABLED=false
unset ZFS_OFFSITE_CONFIG

demo=${DEMO_DIR:-/var/tmp/zfs-offsite-demo}
pool=${DEMO_POOL:-zfs-offsite-demo}
mark=zfs-offsite:demo
refuse() {
    echo "demo.sh: $1" >&2
    exit 2
}
[[ $pool =~ ^[A-Za-z][A-Za-z0-9_.-]*$ ]] ||
    refuse "DEMO_POOL '$pool' is no pool name: use letters, digits, _ . -, e.g. zfs-offsite-demo2"
[[ $demo == /?*/?* && $demo != *..* ]] ||
    refuse "DEMO_DIR '$demo' must be an absolute directory below another, e.g. /var/tmp/demo2"
if zpool list "$pool" >/dev/null 2>&1; then
    # Ours: the property this script sets, or (a demo pool made before it did) our pool file.
    if [ "$(zfs get -H -o value "$mark" "$pool")" != 1 ] &&
        ! zpool status "$pool" | grep -qF " $demo/pool.img "; then
        refuse "pool $pool exists and is not a demo pool (no $mark=1): choose another DEMO_POOL"
    fi
    zpool destroy -f "$pool"
fi
if [ -e "$demo" ] && [ ! -e "$demo/.zfs-offsite-demo" ] && [ "$pool" = zfs-offsite-demo ] &&
    [ "$demo" = /var/tmp/zfs-offsite-demo ]; then
    touch "$demo/.zfs-offsite-demo" # the default directory of a demo made before the marker
fi
if [ -e "$demo" ] && [ ! -e "$demo/.zfs-offsite-demo" ] && [ -n "$(ls -A "$demo")" ]; then
    refuse "directory $demo is not empty and not a demo's (no .zfs-offsite-demo): choose another DEMO_DIR"
fi
rm -rf "$demo"
mkdir -p "$demo"
touch "$demo/.zfs-offsite-demo"
truncate -s 512M "$demo/pool.img"
zpool create "$pool" "$demo/pool.img"
zfs set "$mark=1" "$pool"
export ZFS_OFFSITE_SOURCE__POOL="$pool" ZFS_OFFSITE_TARGET__URL="file://$demo/archive"

snapshot_all() {
    local name="auto-$(date +%Y%m%d.%H%M%S)-1w"
    for member in alice bob carol; do
        local dir="/$pool/elabfs-$member"
        head -c 3M /dev/urandom > "$dir/measurements-$RANDOM.bin"
        seq -f "sample %g of $member $name" 1 120000 > "$dir/notes-$RANDOM.txt"
        zfs snapshot "$pool/elabfs-$member@$name"
    done
    sleep 1
}

for member in alice bob carol; do
    zfs create "$pool/elabfs-$member"
done
snapshot_all

echo "== first night: full backups"
.venv/bin/zfs-offsite backup
snapshot_all
snapshot_all
echo "== second night: incremental backups (-I, both new snapshots in one file)"
.venv/bin/zfs-offsite backup
echo "== status"
.venv/bin/zfs-offsite status
echo "== archive: $demo/archive"
ls -l "$demo/archive/alice"
echo "== verify: every stored file read back"
.venv/bin/zfs-offsite verify
echo "== restore alice's newest snapshot into $pool/restored-alice"
.venv/bin/zfs-offsite restore alice "$pool/restored-alice"
newest=$(zfs list -H -t snapshot -o name -s createtxg -r "$pool/elabfs-alice" | tail -1)
echo "source   $newest guid $(zfs get -H -p -o value guid "$newest")"
echo "restored $pool/restored-alice@${newest#*@} guid $(zfs get -H -p -o value guid "$pool/restored-alice@${newest#*@}")"
