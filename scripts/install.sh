#!/usr/bin/env bash
# Production install of zfs-offsite on a ZFS host (or on the host that pulls from it),
# and with --server on the host of the central Prefect server. Run it as root.
#
# Installs the tool and what it needs at run time, nothing else: it never installs
# zfs-fuse or an SSH server and never touches the system's sshd (pull mode and the
# admins need it). For the demo and the tests use scripts/setup-system.sh instead.
#
#   scripts/install.sh [--prefix DIR] [--host NAME] [--server] [--no-packages]
#                      [--python PATH] [--bindir DIR] [--sysconfdir DIR] [--statedir DIR]
#
# It creates, and on a second run leaves as they are:
#   PREFIX (/opt/zfs-offsite)   the code (a copy of this checkout): the working
#                               directory of prefect.yaml's pull step
#   PREFIX/.venv                Python environment with the project, versions from uv.lock,
#                               built by the system Python (/usr/bin/python3: never a
#                               pyenv shim under /root, which a service user cannot run)
#                               with its own venv + pip
#   BINDIR/zfs-offsite          symlink to the venv's command (/usr/local/bin)
#   user zfs-offsite            system user the worker unit runs as (pull mode needs the
#                               SSH key, the config and the archive, not root); home
#                               STATEDIR/zfs-offsite (/var/lib/zfs-offsite), mode 0750
#   SYSCONFDIR/zfs-offsite.toml an example config, only if there is none; mode 0640
#                               root:zfs-offsite (the worker reads it)
#   SYSCONFDIR/default/zfs-offsite
#                               OFFSITE_HOME, OFFSITE_HOST (names the work pool and
#                               deployments), PREFECT_API_URL: read by the systemd
#                               units and deployments/deploy.sh; only if there is none
# With --server, for deployments/systemd/prefect-server.service:
#   user prefect                system user the server runs as; home and PREFECT_HOME
#                               STATEDIR/prefect-server, the UI's files in its ui/
#   SYSCONFDIR/zfs-offsite/     mode 0750 root:prefect
#   SYSCONFDIR/zfs-offsite/prefect-server.env
#                               mode 0640 root:prefect, only if there is none: it holds the
#                               database password (and the API's basic-auth string)
# Debian packages (where apt-get exists): python3, python3-venv, openssh-client. Elsewhere
# (TrueNAS CORE, FreeBSD) it says what is missing.
set -euo pipefail

prefix=/opt/zfs-offsite
bindir=/usr/local/bin
sysconfdir=/etc
statedir=/var/lib
python=/usr/bin/python3
host_name=
packages=yes
server=no
worker_user=zfs-offsite
server_user=prefect

die() { echo "install.sh: $*" >&2; exit 1; }
bad() { echo "install.sh: $*" >&2; exit 2; }  # bad input: a wrong option or value
usage() { sed -n '9,10p' "$0" | sed 's/^#//' >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
        --bindir) bindir=${2:?--bindir needs a directory}; shift 2 ;;
        --sysconfdir) sysconfdir=${2:?--sysconfdir needs a directory}; shift 2 ;;
        --statedir) statedir=${2:?--statedir needs a directory}; shift 2 ;;
        --python) python=${2:?--python needs the path of a python3}; shift 2 ;;
        --host) host_name=${2:?--host needs a name}; shift 2 ;;
        --server) server=yes; shift ;;
        --no-packages) packages=no; shift ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown option $1" >&2; usage ;;
    esac
done

[ "$(id -u)" -eq 0 ] || die "run it as root: it writes $prefix, $bindir and $sysconfdir and creates users"
for dir in "$prefix" "$statedir"; do
    case "$dir" in /*) ;; *) bad "$dir: give an absolute path" ;; esac
done
# The service users read the code and the venv: whatever root's umask, make them readable.
umask 022
src=$(cd "$(dirname "$0")/.." && pwd -P)
[ -f "$src/pyproject.toml" ] && [ -d "$src/flows" ] || die "$src is not a zfs-offsite checkout"

if [ -z "$host_name" ]; then
    host_name=$(hostname | cut -d. -f1 | tr 'A-Z' 'a-z')
fi
[[ "$host_name" =~ ^[a-z0-9][a-z0-9-]*$ ]] \
    || bad "host name '$host_name': use lowercase letters, digits and '-' (--host NAME)"

changed=()

# --- run-time packages ---------------------------------------------------------
needed=(python3 python3-venv openssh-client)
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

# The system Python, by path: root's PATH may start with a pyenv shim or another Python
# that lives where the service users cannot go (/root is 0700).
case "$python" in /*) ;; *) bad "--python $python: give an absolute path" ;; esac
[ -x "$python" ] || bad "$python not found: install Python 3.11 or newer (Debian: python3), or give --python PATH"
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
# Built by $python with its own venv + pip (never a uv or pip found on PATH, e.g. a test
# set-up's). A stamp of what it was built from: same lock, same Python -> nothing to do.
venv=$prefix/.venv
stamp=$venv/.zfs-offsite-install
want=$("$python" -c 'import hashlib, sys; print(hashlib.sha256(b"".join(
    open(f, "rb").read() for f in sys.argv[1:])).hexdigest(), sys.executable,
    sys.version.split()[0])' "$prefix/pyproject.toml" "$prefix/uv.lock")
if [ -x "$venv/bin/zfs-offsite" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    :
else
    base=$("$python" -c 'import sys; print(sys.base_prefix)')
    if [ -e "$venv" ] && [ "$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)' \
            2>/dev/null)" != "$base" ]; then
        echo "venv: $venv was built by another Python: building it again with $python"
        rm -rf "${venv:?}"
    fi
    echo "venv: $python -m venv and pip into $venv (versions pinned from uv.lock)"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv" \
        || die "$python -m venv failed: install python3-venv (Debian) and run this again"
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

# --- service users ----------------------------------------------------------------
# make_user NAME HOME: a system user and group NAME without login, with HOME (0750).
make_user() {
    local name=$1 home=$2
    if ! id -u "$name" >/dev/null 2>&1; then
        command -v useradd >/dev/null 2>&1 \
            || die "no useradd here: create the system user $name (home $home) by hand, then run this again"
        useradd --system --user-group --home-dir "$home" --shell /usr/sbin/nologin \
            --comment "zfs-offsite ($name)" "$name"
        changed+=("user $name")
    fi
    if [ ! -d "$home" ]; then
        mkdir -p "$home"
        changed+=("$home")
    fi
    if [ "$(stat -c '%U:%G %a' "$home")" != "$name:$name 750" ]; then
        chown "$name:$name" "$home"
        chmod 750 "$home"
    fi
}
# set_mode PATH MODE OWNER:GROUP, noted as a change only when it was different
set_mode() {
    if [ "$(stat -c '%a %U:%G' "$1")" != "$2 $3" ]; then
        chown "$3" "$1"
        chmod "$2" "$1"
        changed+=("$1 ($2 $3)")
    fi
}
worker_home=$statedir/zfs-offsite
make_user "$worker_user" "$worker_home"
# The worker user runs the tool: prove it can, from its own home (not root's PATH or HOME).
if command -v runuser >/dev/null 2>&1; then
    runuser -u "$worker_user" -- env -i HOME="$worker_home" PATH=/usr/bin:/bin \
        "$venv/bin/zfs-offsite" --help >/dev/null \
        || die "user $worker_user cannot run $venv/bin/zfs-offsite: is $prefix readable to it?"
fi

config=$sysconfdir/zfs-offsite.toml
if [ ! -e "$config" ]; then
    mkdir -p "$sysconfdir"
    install -m 640 "$prefix/deployments/zfs-offsite.example.toml" "$config"
    changed+=("$config (example: edit it)")
fi
set_mode "$config" 640 "root:$worker_user"

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
# If the server has basic auth (PREFECT_SERVER_API_AUTH_STRING), the same user:password
# (this file is mode 0600 root; systemd reads it before it drops to the unit user):
#PREFECT_API_AUTH_STRING=admin:the-same-password
PREFECT_SERVER_ANALYTICS_ENABLED=false
EOF
    changed+=("$envfile")
else
    home=$(sed -n 's/^OFFSITE_HOME=//p' "$envfile" | tail -1)
    [ "$home" = "$prefix" ] \
        || echo "warning: $envfile has OFFSITE_HOME=$home, not $prefix: fix it by hand"
fi

# --- the central Prefect server (--server) -------------------------------------------
if [ "$server" = yes ]; then
    server_home=$statedir/prefect-server
    make_user "$server_user" "$server_home"
    if [ ! -d "$server_home/ui" ]; then
        install -d -m 750 -o "$server_user" -g "$server_user" "$server_home/ui"
        changed+=("$server_home/ui")
    fi
    confdir=$sysconfdir/zfs-offsite
    [ -d "$confdir" ] || { mkdir -p "$confdir"; changed+=("$confdir"); }
    set_mode "$confdir" 750 "root:$server_user"
    server_env=$confdir/prefect-server.env
    if [ ! -e "$server_env" ]; then
        (umask 077 && cat > "$server_env") <<EOT
# The Prefect server's environment (deployments/systemd/prefect-server.service).
# SECRET: it holds the database password (and the API's basic-auth string), so it is
# mode 0640 root:$server_user; keep it so, and out of backups of /etc that others read.
PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://prefect:EDIT-PASSWORD@localhost:5432/prefect
PREFECT_HOME=$server_home
PREFECT_SERVER_UI_STATIC_DIRECTORY=$server_home/ui
PREFECT_SERVER_ANALYTICS_ENABLED=false
# Where it listens: this host only. Browse through a tunnel (ssh -L 4200:127.0.0.1:4200
# <this host>), or see deployments/README.md to expose it: then set an auth string first.
PREFECT_SERVER_API_HOST=127.0.0.1
PREFECT_SERVER_API_PORT=4200
# The API address as the BROWSER reaches it (not --host): http://<name>:4200/api when exposed.
PREFECT_UI_API_URL=http://127.0.0.1:4200/api
# Basic auth for every API call (user:password); workers, deploy.sh and the CLI then
# need PREFECT_API_AUTH_STRING with the same value in /etc/default/zfs-offsite.
#PREFECT_SERVER_API_AUTH_STRING=admin:EDIT-A-LONG-RANDOM-PASSWORD
EOT
        changed+=("$server_env (edit the password)")
    fi
    set_mode "$server_env" 640 "root:$server_user"
fi


if [ "${#changed[@]}" -eq 0 ]; then
    echo "zfs-offsite is installed in $prefix and up to date: nothing changed"
else
    echo "zfs-offsite installed in $prefix; changed:"
    printf '  %s\n' "${changed[@]}"
    echo "next: pull mode (the NAS over SSH): docs/how-to/pull-mode.md, step 2;" \
        "else edit $config, check it with \`zfs-offsite config --check\`; schedules:" \
        "$prefix/deployments/README.md"
    [ "$server" = no ] || echo "server: edit the password in $server_env (deployments/README.md)"
fi
# The command, deploy.sh and the units look for /etc/default/zfs-offsite; say, on every run,
# how they find this one instead.
if [ "$envfile" != /etc/default/zfs-offsite ]; then
    echo "note: the env file is not /etc/default/zfs-offsite: export OFFSITE_ENV_FILE=$envfile" \
        "for zfs-offsite and deploy.sh, and point the units' EnvironmentFile= lines at it"
fi
