#!/bin/sh
# Deploys prefect.yaml for THIS host to the Prefect server in PREFECT_API_URL:
# creates the process work pool zfs-offsite-$OFFSITE_HOST if it is missing, then
# the deployments nightly-$OFFSITE_HOST, weekly-drill-$OFFSITE_HOST, ... on it.
# Everything comes from the environment file scripts/install.sh wrote
# (/etc/default/zfs-offsite, or $OFFSITE_ENV_FILE); run it again after an update.
set -eu
env_file=${OFFSITE_ENV_FILE:-/etc/default/zfs-offsite}
if [ -r "$env_file" ]; then
    set -a
    . "$env_file"
    set +a
fi
for name in OFFSITE_HOME OFFSITE_HOST PREFECT_API_URL; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        echo "deploy.sh: $name is not set: set it in $env_file (scripts/install.sh writes it)" >&2
        exit 2
    fi
done
cd "$OFFSITE_HOME"
prefect=$OFFSITE_HOME/.venv/bin/prefect
pool=zfs-offsite-$OFFSITE_HOST
if ! "$prefect" work-pool inspect "$pool" >/dev/null 2>&1; then
    "$prefect" work-pool create "$pool" --type process
fi
exec "$prefect" --no-prompt deploy --prefect-file deployments/prefect.yaml --all
