#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test: lint, types, the docs site, unit, integration
# (real zfs-fuse, a private sshd on 127.0.0.1) and the Prefect flow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
.venv/bin/python -m tests.support.services zfs-fuse
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The docs site, strictly: a broken link or anchor, or a page outside the nav, fails.
site=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"
rm -rf "$site"
exec .venv/bin/python -m pytest "$@"
