#!/usr/bin/env bash
# The one test command: the metrika_core suite always, the Odoo-layer suite whenever
# `python3 -c 'import odoo'` works (on a fresh PostgreSQL database). Non-zero on any failure,
# a core suite that collects no test (pytest's exit code 5) included. Arguments go to pytest.
#
# CORE_PYTHON: the interpreter that runs the core suite (default: python3), for example the
# python of a virtualenv where README.rst's install command installed the project, as .ci/run
# does. The Odoo-layer suite always runs with python3, the interpreter that imports odoo.
set -uo pipefail
cd "$(dirname "$0")/.."

core_python="${CORE_PYTHON:-python3}"
status=0
echo "== metrika_core tests (pytest, no Odoo, with $core_python)"
# Any non-zero exit fails the run: test failures (1), an interrupted run (2), no test
# collected (5), a missing interpreter (127).
"$core_python" -m pytest tests "$@" || status=1

echo "== Odoo-layer tests"
if python3 -c 'import odoo' >/dev/null 2>&1; then
    python3 scripts/odoo_tests.py || status=1
else
    echo "SKIPPED: the Odoo-layer tests did not run, because python3 cannot import odoo on this machine."
fi

exit "$status"
