#!/usr/bin/env bash
# The demo on embedded defaults: a file-backed pool `zfs-offsite-demo` with three
# members and real data, backed up to file:///var/tmp/zfs-offsite-demo/archive:
# first a full backup, then (after new data and snapshots) an incremental one;
# then it verifies the archive and restores one member, comparing GUIDs.
# It starts from scratch each time: the demo pool and archive are recreated.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
.venv/bin/python -m tests.support.services zfs-fuse
export PREFECT_SERVER_ANALYTICS_ENABLED=false
unset ZFS_OFFSITE_CONFIG

demo=/var/tmp/zfs-offsite-demo
pool=zfs-offsite-demo
zpool destroy -f "$pool" 2>/dev/null || true
rm -rf "$demo"
mkdir -p "$demo"
truncate -s 512M "$demo/pool.img"
zpool create "$pool" "$demo/pool.img"

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
