#!/usr/bin/env bash
# Best effort: build (once, ~9 min, cached in /var/tmp/openzfs-vm) and boot the
# OpenZFS 2.3 VM from ../shared/tools/openzfs-vm, so the tests marked
# `openzfs_vm` (bookmarks, `send -nP`) run against real OpenZFS. Exits non-zero
# if the VM cannot be had; those tests then skip with the reason.
#   scripts/openzfs-vm.sh         build if needed and start
#   scripts/openzfs-vm.sh stop    power it off
set -euo pipefail
cd "$(dirname "$0")/.."
# The harness: $OPENZFS_VM_TOOLS, else shared/tools/openzfs-vm beside this checkout,
# else beside the main checkout when this is a git worktree (no machine paths here).
candidates() {
    echo "$(cd .. && pwd)/shared/tools/openzfs-vm"
    if common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null); then
        echo "$(dirname "$(dirname "$common")")/shared/tools/openzfs-vm"
    fi
}
tools=${OPENZFS_VM_TOOLS:-}
while read -r candidate; do
    if [ -z "$tools" ] && [ -x "$candidate/start.sh" ]; then tools=$candidate; fi
done < <(candidates)
if [ -z "$tools" ]; then
    echo "openzfs-vm: no harness found (set OPENZFS_VM_TOOLS)" >&2
    exit 1
fi
if [ "${1:-start}" = stop ]; then
    exec "$tools/stop.sh"
fi
run=${OPENZFS_VM_CACHE:-/var/tmp/openzfs-vm}/run-${OPENZFS_VM_PORT:-2222}
if [ -s "$run/qemu.pid" ] && kill -0 "$(cat "$run/qemu.pid")" 2>/dev/null; then
    echo "openzfs-vm: already running (pid $(cat "$run/qemu.pid"))"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q qemu-system-x86 qemu-utils debootstrap e2fsprogs openssh-client >/dev/null
"$tools/build.sh"
"$tools/start.sh"
