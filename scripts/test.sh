#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs every test: lint, types, unit, integration
# (real zfs-fuse, a private sshd on 127.0.0.1) and the Prefect flow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
.venv/bin/python -m tests.support.services zfs-fuse
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
