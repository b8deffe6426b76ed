#!/usr/bin/env bash
# The main job: an Odoo 18.0 server with the addon installed on a fresh database.
# Usage: scripts/run_server.sh [database] [http port]   (defaults: metrika_demo_<time>, 8069)
set -euo pipefail
cd "$(dirname "$0")/.."
database="${1:-metrika_demo_$(date +%s)}"
port="${2:-8069}"
if ! python3 -c 'import odoo' >/dev/null 2>&1; then
    echo "python3 cannot import odoo: put an Odoo 18.0 tree on this interpreter's path first (see README.rst)." >&2
    exit 2
fi
addons_path=$(cd scripts && python3 -c 'import odoo_env; print(odoo_env.addons_path())')
echo "Odoo with metrika_offline_conversions on database ${database}: http://127.0.0.1:${port} (login admin / admin)"
python3 -m odoo --database "$database" --addons-path "$addons_path" \
    --init metrika_offline_conversions --http-port "$port" "${@:3}"
