#!/usr/bin/env bash
# Production install of zfs-offsite on a ZFS host (or on the host that pulls from it).
#
# Installs the tool and what it needs at run time, nothing else: it never installs
# zfs-fuse or an SSH server and never touches the system's sshd (pull mode and the
# admins need it). For the demo and the tests use scripts/setup-system.sh instead.
#
#   sudo scripts/install.sh [--prefix DIR] [--host NAME] [--no-packages]
#                           [--bindir DIR] [--sysconfdir DIR]
#
# It creates, and on a second run leaves as they are:
#   PREFIX (/opt/zfs-offsite)   the code (a copy of this checkout): the working
#                               directory of prefect.yaml's pull step
#   PREFIX/.venv                Python environment with the project, versions from uv.lock
#   BINDIR/zfs-offsite          symlink to the venv's command (/usr/local/bin)
#   SYSCONFDIR/zfs-offsite.toml an example config, only if there is none
#   SYSCONFDIR/default/zfs-offsite
#                               OFFSITE_HOME, OFFSITE_HOST (names the work pool and
#                               deployments), PREFECT_API_URL: read by the systemd
#                               units and deployments/deploy.sh; only if there is none
# Debian packages (where apt-get exists): python3, openssh-client, and python3-venv
# when uv is not available. Elsewhere (TrueNAS CORE, FreeBSD) it says what is missing.
set -euo pipefail

prefix=/opt/zfs-offsite
bindir=/usr/local/bin
sysconfdir=/etc
host_name=
packages=yes

die() { echo "install.sh: $*" >&2; exit 1; }
usage() { sed -n '8,9p' "$0" | sed 's/^#//' >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --bindir) bindir=${2:?--bindir needs a directory}; shift 2 ;;
        --sysconfdir) sysconfdir=${2:?--sysconfdir needs a directory}; shift 2 ;;
        --host) host_name=${2:?--host needs a name}; shift 2 ;;
        --no-packages) packages=no; shift ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown option $1" >&2; usage ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run as root (sudo): it writes $prefix, $bindir and $sysconfdir"
case "$prefix" in /*) ;; *) die "--prefix $prefix: give an absolute path" ;; esac
src=$(cd "$(dirname "$0")/.." && pwd -P)
[ -f "$src/pyproject.toml" ] && [ -d "$src/flows" ] || die "$src is not a zfs-offsite checkout"

if [ -z "$host_name" ]; then
    host_name=$(hostname | cut -d. -f1 | tr 'A-Z' 'a-z')
fi
[[ "$host_name" =~ ^[a-z0-9][a-z0-9-]*$ ]] \
    || die "host name '$host_name': use lowercase letters, digits and '-' (--host NAME)"

changed=()

# uv installs the locked versions quickly; without it, python3 -m venv and pip.
uv=$(command -v uv || true)
[ -n "$uv" ] || { [ -x /opt/zfs-offsite-uv/bin/uv ] && uv=/opt/zfs-offsite-uv/bin/uv; } || true

# --- run-time packages ---------------------------------------------------------
needed=(python3 openssh-client)
[ -n "$uv" ] || needed+=(python3-venv)
if [ "$packages" = no ]; then
    echo "packages: not checked (--no-packages); needed: ${needed[*]}"
elif command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    missing=()
    for p in "${needed[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "packages: installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
        changed+=("packages ${missing[*]}")
    fi
else
    echo "packages: no apt-get here; make sure these are installed:" \
        "Python 3.11+ (python3), the OpenSSH client (ssh), zfs"
fi
command -v zfs >/dev/null 2>&1 \
    || echo "note: no zfs command here: fine for pull mode (source.ssh_url), needed otherwise"

python=$(command -v python3 || true)
[ -n "$python" ] || die "python3 not found: install Python 3.11 or newer"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$python is $("$python" -V 2>&1); zfs-offsite needs Python 3.11 or newer"

# --- the code: a copy of this checkout (the pull step's working directory) -----
items=(pyproject.toml uv.lock README.md zfs_offsite flows tasks deployments cli examples)
mkdir -p "$prefix"
if [ "$(cd "$prefix" && pwd -P)" = "$src" ]; then
    echo "code: installing in place ($src)"
else
    for item in "${items[@]}"; do
        [ -e "$src/$item" ] || continue
        if ! diff -rq -x __pycache__ "$src/$item" "$prefix/$item" >/dev/null 2>&1; then
            rm -rf "${prefix:?}/$item"
            cp -R "$src/$item" "$prefix/$item"
            find "$prefix/$item" -name __pycache__ -prune -exec rm -rf {} +
            changed+=("$prefix/$item")
        fi
    done
fi

# --- the Python environment ----------------------------------------------------
# A stamp of what the venv was built from: same lock, same Python -> nothing to do.
venv=$prefix/.venv
stamp=$venv/.zfs-offsite-install
want=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(b"".join(
    open(f, "rb").read() for f in sys.argv[1:])).hexdigest(), sys.version.split()[0])' \
    "$prefix/pyproject.toml" "$prefix/uv.lock")
if [ -x "$venv/bin/zfs-offsite" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    :
elif [ -n "$uv" ]; then
    echo "venv: uv sync (locked versions) into $venv"
    (cd "$prefix" && UV_PYTHON_DOWNLOADS=never "$uv" sync --frozen --no-dev --quiet \
        --python "$python")
    echo "$want" > "$stamp"
    changed+=("$venv")
else
    echo "venv: python3 -m venv and pip into $venv (versions pinned from uv.lock)"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    constraints=$(mktemp)
    trap 'rm -f "$constraints"' EXIT
    # uv.lock as pip constraints; a package locked at several versions stays unpinned.
    "$python" - "$prefix/uv.lock" > "$constraints" <<'PY'
import collections, sys, tomllib
with open(sys.argv[1], "rb") as f:
    lock = tomllib.load(f)
versions = collections.defaultdict(set)
for p in lock.get("package", []):
    if "version" in p and p["name"] != "zfs-offsite":
        versions[p["name"]].add(p["version"])
for name, found in sorted(versions.items()):
    if len(found) == 1:
        print(f"{name}=={found.pop()}")
PY
    "$venv/bin/python" -m pip install --quiet --constraint "$constraints" --editable "$prefix"
    echo "$want" > "$stamp"
    changed+=("$venv")
fi
"$venv/bin/zfs-offsite" --help >/dev/null || die "$venv/bin/zfs-offsite --help failed"

# --- command, config, environment file ------------------------------------------
mkdir -p "$bindir"
if [ "$(readlink "$bindir/zfs-offsite" 2>/dev/null)" != "$venv/bin/zfs-offsite" ]; then
    [ ! -e "$bindir/zfs-offsite" ] || [ -L "$bindir/zfs-offsite" ] \
        || die "$bindir/zfs-offsite exists and is not a symlink: move it away first"
    ln -sfn "$venv/bin/zfs-offsite" "$bindir/zfs-offsite"
    changed+=("$bindir/zfs-offsite")
fi

config=$sysconfdir/zfs-offsite.toml
if [ ! -e "$config" ]; then
    mkdir -p "$sysconfdir"
    install -m 600 "$prefix/deployments/zfs-offsite.example.toml" "$config"
    changed+=("$config (example: edit it)")
fi

envfile=$sysconfdir/default/zfs-offsite
if [ ! -e "$envfile" ]; then
    mkdir -p "$sysconfdir/default"
    (umask 077 && cat > "$envfile") <<EOF
# zfs-offsite on this host; read by its systemd units and deployments/deploy.sh.
# Variables of the tool's own settings start with ZFS_OFFSITE_; these do not.
OFFSITE_HOME=$prefix
# Names this host's work pool (zfs-offsite-$host_name) and deployments (nightly-$host_name).
OFFSITE_HOST=$host_name
ZFS_OFFSITE_CONFIG=$config
# The central Prefect server (needed by the worker and deploy.sh; serve runs its own without):
#PREFECT_API_URL=http://prefect-server:4200/api
PREFECT_SERVER_ANALYTICS_ENABLED=false
EOF
    changed+=("$envfile")
else
    home=$(sed -n 's/^OFFSITE_HOME=//p' "$envfile" | tail -1)
    [ "$home" = "$prefix" ] \
        || echo "warning: $envfile has OFFSITE_HOME=$home, not $prefix: fix it by hand"
fi

if [ "${#changed[@]}" -eq 0 ]; then
    echo "zfs-offsite is installed in $prefix and up to date: nothing changed"
else
    echo "zfs-offsite installed in $prefix; changed:"
    printf '  %s\n' "${changed[@]}"
    echo "next: edit $config, check with \`zfs-offsite plan\`; schedules: $prefix/deployments/README.md"
fi
