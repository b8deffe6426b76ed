#!/usr/bin/env bash
# The main job: Odoo with the addon installed on a fresh database.
# By default the sandbox (scripts/sandbox.py): a local Metrica stand-in beside Odoo and a demo
# shop sending to it. With --real (or SANDBOX=0): Odoo alone, for real use.
# Usage: scripts/run_server.sh [--real] [database] [http port] [odoo options...]
#        (defaults: metrika_demo_<time>, 8069; the stand-in's port: STAND_IN_PORT, 8079)
set -euo pipefail
cd "$(dirname "$0")/.."
sandbox="${SANDBOX:-1}"
if [ "${1:-}" = "--real" ]; then
    sandbox=0
    shift
fi
database="${1:-metrika_demo_$(date +%s)}"
port="${2:-8069}"
if ! python3 -c 'import odoo' >/dev/null 2>&1; then
    echo "python3 cannot import odoo: put an Odoo 18.0 tree on this interpreter's path first (see README.rst)." >&2
    exit 2
fi
if [ "$sandbox" != "0" ]; then
    exec python3 scripts/sandbox.py "$database" "$port" "${@:3}"
fi
addons_path=$(cd scripts && python3 -c 'import odoo_env; print(odoo_env.addons_path())')
echo "Odoo with metrika_offline_conversions on database ${database}: http://127.0.0.1:${port} (login admin / admin)"
python3 -m odoo --database "$database" --addons-path "$addons_path" \
    --init metrika_offline_conversions --http-port "$port" "${@:3}"
