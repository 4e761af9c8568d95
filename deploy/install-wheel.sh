#!/bin/sh
# The one install step for a carehub release: the locked dependencies (every file's hash checked),
# then the wheel itself without resolving again, then pip's own consistency check (the wheel's
# declared dependencies are all satisfied by the lock). The Containerfile, the systemd layout in
# docs/deploy.md and tests/integration/test_wheel_install.py all run exactly this.
#
#   deploy/install-wheel.sh VENV WHEEL [LOCK]      (LOCK defaults to requirements.lock beside deploy/)
set -eu
venv=$1
wheel=$2
lock=${3:-$(dirname "$0")/../requirements.lock}
"$venv/bin/pip" install --disable-pip-version-check --require-hashes -r "$lock"
"$venv/bin/pip" install --disable-pip-version-check --no-deps "$wheel"
"$venv/bin/pip" check --disable-pip-version-check
