#!/usr/bin/env bash
# The one test command: the metrika_core suite always, then the Odoo-layer suite (each time on a
# fresh PostgreSQL database) on every Odoo series whose interpreter is found. Non-zero on any
# failure, a core suite that collects no test (pytest's exit code 5) included. Arguments go to
# pytest.
#
# CORE_PYTHON: the interpreter that runs the core suite (default: python3), for example the
# python of a virtualenv where README.rst's install command installed the project, as .ci/run
# does.
# The Odoo-layer suite runs once per series, with the interpreter that imports that series'
# odoo (a source tree on its path):
#   ODOO18_PYTHON  Odoo 18.0 (default: python3)
#   ODOO19_PYTHON  Odoo 19.0 (default: /work/venv19/bin/python, where it exists; README.rst
#                  says how that virtualenv is made)
# A series whose interpreter is missing, or imports no odoo of that series, is skipped and
# named as skipped; the run fails when no series ran on a machine where one was asked for by
# its variable.
set -uo pipefail
cd "$(dirname "$0")/.."

core_python="${CORE_PYTHON:-python3}"
status=0
echo "== metrika_core tests (pytest, no Odoo, with $core_python)"
# Any non-zero exit fails the run: test failures (1), an interrupted run (2), no test
# collected (5), a missing interpreter (127).
"$core_python" -m pytest tests "$@" || status=1

default_19=/work/venv19/bin/python
ran=()
skipped=()
failed=()
for series in 18 19; do
    variable="ODOO${series}_PYTHON"
    python="${!variable:-}"
    if [ -z "$python" ]; then
        case "$series" in
            18) python=python3 ;;
            19) python="$default_19" ;;
        esac
    fi
    echo "== Odoo-layer tests on Odoo $series.0 (with $python)"
    found=$("$python" -c 'import odoo.release as r; print(r.version_info[0])' 2>/dev/null || true)
    if [ "$found" != "$series" ]; then
        reason="$python imports no Odoo $series.0"
        [ -n "$found" ] && reason="$python imports Odoo $found.0, not $series.0"
        skipped+=("$series.0")
        if [ -n "${!variable:-}" ]; then
            # A series asked for by its variable must run.
            echo "FAILED: the Odoo-layer tests cannot run on Odoo $series.0: $reason, and $variable names it."
            failed+=("$series.0 (not found)")
            status=1
        else
            echo "SKIPPED: the Odoo-layer tests did not run on Odoo $series.0: $reason (set $variable to the python that imports it)."
        fi
        continue
    fi
    ran+=("$series.0")
    if ! "$python" scripts/odoo_tests.py; then
        failed+=("$series.0")
        status=1
    fi
done

echo "== Odoo-layer tests: ran on ${ran[*]:-no series}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
exit "$status"
