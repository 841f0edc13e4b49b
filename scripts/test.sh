#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test: lint, types, the docs site, the fast tier as a
# non-root user on a simulated installed host, then every root tier (real zfs-fuse, a
# private sshd on 127.0.0.1, the Prefect servers, PostgreSQL, chromium, the OpenZFS VM
# if it is up). Every test runs once. Prints each stage's and each tier's wall time and
# the 20 slowest tests, so CI records them. Fails if any stage fails (all stages run).
# With arguments, pytest runs once, as root, on what they select among all the tests
# (`scripts/test.sh tests/unit -q`, `-k resume`), as before the tiers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
.venv/bin/python -m tests.support.services zfs-fuse

stages=()
failed=()
stage() {
    local name=$1 start status=0
    shift
    echo "=== $name: $*"
    start=$(date +%s)
    "$@" || status=$?
    stages+=("$(printf '%-34s %6ss  %s' "$name" "$(($(date +%s) - start))" \
        "$([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")")")
    [ "$status" -eq 0 ] || failed+=("$name")
}

stage "ruff check" .venv/bin/ruff check .
stage "ruff format" .venv/bin/ruff format --check .
stage "mypy" .venv/bin/mypy
# The docs site, strictly: a broken link or anchor, or a page outside the nav, fails.
site=$(mktemp -d)
stage "docs site (mkdocs --strict)" env NO_MKDOCS_2_WARNING=1 \
    .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
if [ "$#" -gt 0 ]; then
    stage "pytest $*" .venv/bin/python -m pytest --tier=all --require-services --durations=20 "$@"
else
    # Plain `pytest` as a non-root user, /etc holding an installed host's files.
    stage "fast tier (non-root, hermetic)" bash scripts/fast-tier-as-user.sh
    # Every other test, as root; a missing service fails here instead of skipping.
    stage "root tiers" .venv/bin/python -m pytest --tier=root --require-services --durations=20
fi

echo "=== wall time per stage (each tier's: in its pytest summary above)"
printf '%s\n' "${stages[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
