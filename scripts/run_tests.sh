#!/usr/bin/env bash
# The one test command: the metrika_core suite always, the Odoo-layer suite whenever
# `python3 -c 'import odoo'` works (on a fresh PostgreSQL database). Non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
echo "== metrika_core tests (pytest, no Odoo)"
python3 -m pytest tests "$@" || status=1

echo "== Odoo-layer tests"
if python3 -c 'import odoo' >/dev/null 2>&1; then
    python3 scripts/odoo_tests.py || status=1
else
    echo "SKIPPED: the Odoo-layer tests did not run, because python3 cannot import odoo on this machine."
fi

exit "$status"
