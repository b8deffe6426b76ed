"""Take the README's screenshots again, from a real browser on a fresh database.

1. Installs the addon on a new database (no demo data).
2. Makes a little shop's data: a configured company (its connection tested against a local
   Metrica stand-in, tests/metrika_stand_in.py), a lead and sale orders with a ClientID and a yclid,
   then runs the upload cron for real, so that the sync log holds sent, failed, skipped and pending
   conversions and their uploads.
3. Starts Odoo, logs in with headless Chromium (driven by playwright-core from npm, see
   scripts/screenshots.cjs) and saves the PNGs beside the Apps page, in the addon's
   static/description/, where README.rst and the readme/ fragments show them.

Usage: ``python3 scripts/screenshots.py [--out DIR] [--keep-database]``. Needs PostgreSQL, Odoo,
node/npm (playwright-core is installed on first use under ~/.cache) and Chromium. The Odoo series
is the one the interpreter imports: ``/work/venv19/bin/python scripts/screenshots.py`` takes
them on 19.0 (the installs and the server started use the same interpreter).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from odoo_env import (
    ADDON,
    REPO,
    addons_path,
    free_port,
    install_command,
    odoo_command,
    wait_for_postgres,
)

# Each module by name: 19.0's ``odoo`` is a namespace package that imports nothing.
import odoo.modules.registry
import odoo.sql_db
import odoo.tools
from odoo import SUPERUSER_ID, api

PLAYWRIGHT = "playwright-core@1.65.1"
NODE_MODULES_HOME = pathlib.Path.home() / ".cache" / "metrika_offline_conversions" / "screenshots"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
OUT = REPO / ADDON / "static" / "description"
TOKEN = "screenshot-demo-token"
CLIENT_ID = "1628529640459314054"
YCLID = "6754821930114400255"
SECOND_CLIENT_ID = "1701234567123456789"


def load_stand_in():
    spec = importlib.util.spec_from_file_location(
        "metrika_stand_in", REPO / "tests" / "metrika_stand_in.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install(database):
    subprocess.run(install_command(database, (ADDON,)), check=True)


def make_demo_data(database, stand_in):
    """The records the screenshots show; returns their ids."""
    odoo.tools.config.parse_config(
        ["--database", database, "--addons-path", addons_path(), "--log-level", "warn"]
    )
    registry = odoo.modules.registry.Registry(database)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env.company
        rouble = env.ref("base.RUB")
        rouble.active = True
        company.write(
            {
                "name": "Divan Furniture",
                "country_id": env.ref("base.ru").id,
                "currency_id": rouble.id,
            }
        )
        env["product.pricelist"].search([]).write({"currency_id": rouble.id})
        salesperson = env.ref("base.user_admin")
        company.sudo().write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(load_stand_in().DEFAULT_COUNTER_ID),
                "metrika_token": TOKEN,
                "metrika_api_url": stand_in.url,
                "metrika_send_leads": True,
            }
        )
        # What the administrator's "Test connection" does: reads the counter's name and zone.
        env["res.config.settings"].create({}).action_metrika_test_connection()

        Partner = env["res.partner"]
        anna = Partner.create(
            {
                "name": "Anna Smirnova",
                "email": "anna.smirnova@example.ru",
                "phone": "+7 912 555-0142",
            }
        )
        oleg = Partner.create(
            {"name": "Oleg Kuznetsov", "email": "oleg@example.ru", "phone": "+7 903 555-0177"}
        )
        walk_in = Partner.create({"name": "Walk-in customer"})
        sofa = env["product.product"].create(
            {"name": "Corner sofa Oslo", "list_price": 84900.0, "type": "consu"}
        )
        chair = env["product.product"].create(
            {"name": "Armchair Bergen", "list_price": 23500.0, "type": "consu"}
        )

        lead = env["crm.lead"].create(
            {
                "name": "Corner sofa for the new flat",
                "type": "opportunity",
                "partner_id": anna.id,
                "user_id": salesperson.id,
                "expected_revenue": 84900.0,
                "metrika_client_id": CLIENT_ID,
                "metrika_yclid": YCLID,
            }
        )

        def order(partner, product, quantity=1, **values):
            return env["sale.order"].create(
                {
                    "partner_id": partner.id,
                    "user_id": salesperson.id,
                    "order_line": [(0, 0, {"product_id": product.id, "product_uom_qty": quantity})],
                    **values,
                }
            )

        # The lead's quotation carries its identifiers; the others are sales of the week.
        lead_order = order(
            anna, sofa, opportunity_id=lead.id, metrika_client_id=CLIENT_ID, metrika_yclid=YCLID
        )
        lead_order.action_confirm()
        order(oleg, chair, 2, metrika_client_id=SECOND_CLIENT_ID).action_confirm()
        order(oleg, sofa).action_confirm()
        order(walk_in, chair).action_confirm()
        cancelled = order(anna, chair)
        cancelled.action_confirm()
        cancelled._action_cancel()
        # A script, not a request: it commits its data itself, as the upload cron commits its own
        # work (the queue is written at commit, and the server started later must see it all).
        cr.commit()

        # Real uploads to the stand-in: the first is accepted; the next file is refused once.
        env["metrika.conversion"]._cron_upload()
        order(oleg, chair, metrika_client_id=SECOND_CLIENT_ID).action_confirm()
        cr.commit()
        stand_in.fail_next(400, path="simple_orders")
        env["metrika.conversion"]._cron_upload()
        # Queued after the last upload: waits for the next one.
        order(anna, sofa, metrika_client_id=CLIENT_ID).action_confirm()
        cr.commit()
        return {"lead": lead.id, "order": lead_order.id}


def find_chromium():
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found (Debian: apt-get install chromium)")


def node_modules():
    """playwright-core from the npm registry, installed once (it drives the system Chromium)."""
    if not (NODE_MODULES_HOME / "node_modules" / "playwright-core").is_dir():
        NODE_MODULES_HOME.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_MODULES_HOME),
                PLAYWRIGHT,
            ],
            check=True,
        )
    return NODE_MODULES_HOME / "node_modules"


def wait_for_http(url, seconds=600):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise SystemExit(f"Odoo did not answer at {url}")


def shots(ids):
    """What to photograph: path, what to wait for, what to click first, what to show."""
    return [
        {
            "name": "settings",
            "path": f"/odoo/action-{ADDON}.metrika_settings_action",
            "waitFor": ".app_settings_block[data-key='metrika_offline_conversions']",
            "show": "#metrika_enabled",
        },
        {
            "name": "lead",
            "path": f"/odoo/action-crm.crm_lead_all_leads/{ids['lead']}",
            "waitFor": ".o_form_view .o_notebook",
            "click": ".o_notebook_headers a[name='metrika']",
            "show": "div[name='metrika_client_id']",
        },
        {
            "name": "order",
            "path": f"/odoo/action-sale.action_orders/{ids['order']}",
            "waitFor": ".o_form_view .o_notebook",
            "click": ".o_notebook_headers a[name='other_information']",
            "show": "div[name='metrika_client_id']",
        },
        {
            "name": "sync_log",
            "path": f"/odoo/action-{ADDON}.metrika_conversion_action",
            "waitFor": ".o_list_view .o_data_row",
        },
    ]


def compress(path):
    """A 256-colour palette keeps a screenshot sharp at a fraction of the size (Pillow: Odoo's)."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def output_folder(path):
    """``--out`` as an absolute folder, created now: a relative one is taken from the current
    directory (as the shell's completion shows it), and a folder that cannot be made fails before
    the long install rather than after it."""
    folder = pathlib.Path(path).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shown(path):
    """A path as the report prints it: from the repository when inside it, else absolute."""
    return path.relative_to(REPO) if path.is_relative_to(REPO) else path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=pathlib.Path, default=OUT, help="where the PNGs go")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it after")
    args = parser.parse_args(argv)
    out = output_folder(args.out)
    if not wait_for_postgres():
        raise SystemExit("PostgreSQL does not accept connections; start it first")
    chromium = find_chromium()
    modules = node_modules()
    database = f"metrika_screenshots_{int(time.time())}_{os.getpid()}"
    stand_in = load_stand_in().MetrikaStandIn(token=TOKEN).start()
    server = None
    try:
        print(f"screenshots: installing {ADDON} on a fresh database {database}", flush=True)
        install(database)
        ids = make_demo_data(database, stand_in)
        port = free_port()
        server = subprocess.Popen(
            odoo_command(
                database,
                "--http-interface",
                "127.0.0.1",
                "--http-port",
                str(port),
                "--max-cron-threads",
                "0",
                "--log-level",
                "warn",
            )
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base_url}/web/login")
        with tempfile.TemporaryDirectory() as scratch:
            config = pathlib.Path(scratch) / "shots.json"
            config.write_text(
                json.dumps(
                    {
                        "baseUrl": base_url,
                        "login": "admin",
                        "password": "admin",
                        "chromium": chromium,
                        "userDataDir": str(pathlib.Path(scratch) / "profile"),
                        "out": str(out),
                        "shots": shots(ids),
                    }
                ),
                encoding="utf-8",
            )
            subprocess.run(
                ["node", str(REPO / "scripts" / "screenshots.cjs"), str(config)],
                check=True,
                env={**os.environ, "NODE_PATH": str(modules)},
            )
        for shot in shots(ids):
            path = out / f"{shot['name']}.png"
            compress(path)
            print(f"screenshots: {shown(path)} ({path.stat().st_size // 1024} KiB)")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                # Still answering a request (a bundle being built): stop it, the database goes next.
                server.kill()
                server.wait()
        stand_in.stop()
        if not args.keep_database:
            odoo.sql_db.close_all()
            subprocess.run(["dropdb", "--if-exists", database], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
