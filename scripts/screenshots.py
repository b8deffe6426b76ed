"""Take the README's screenshots again, from a real browser on a fresh database.

1. Installs the addon on a new database (no demo data).
2. Makes a little shop's data (scripts/demo_shop.py, shared with the sandbox): a configured
   company sending goal-based conversions (its connection tested against a local Metrica
   stand-in, tests/metrika_stand_in.py, as the sandbox starts it), a lead and sale orders with a
   ClientID, a yclid or neither, then runs the upload cron for real and its status check, so
   that the sync log holds linked, not linked, failed, skipped and pending conversions; checks
   the connection's health against the stand-in and refreshes the dashboard's figures. Installs
   sale_management too: its Sales menu holds the Yandex Metrica menu and the dashboard.
3. Starts Odoo, logs in with headless Chromium (driven by playwright-core from npm, see
   scripts/screenshots.cjs) and saves the PNGs beside the Apps page, in the addon's
   static/description/, where README.rst and the readme/ fragments show them.

Usage: ``python3 scripts/screenshots.py [--out DIR] [--keep-database]``. Needs PostgreSQL, Odoo,
node/npm (playwright-core is installed on first use under ~/.cache) and Chromium. The Odoo series
is the one the interpreter imports: ``/work/venv19/bin/python scripts/screenshots.py`` takes
them on 19.0 (the installs and the server started use the same interpreter).
"""

import argparse
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

import demo_shop
from odoo_env import (
    ADDON,
    REPO,
    free_port,
    install_command,
    odoo_command,
    wait_for_postgres,
)
from stand_in_runner import (
    CLIENT_ID,
    GOAL_CANCELLED,
    GOAL_IN_PROGRESS,
    GOAL_PAID,
    SECOND_CLIENT_ID,
    THIRD_CLIENT_ID,
    UNKNOWN_YCLID,
    YCLID,
    start_stand_in,
)

import odoo.sql_db
from odoo import fields

PLAYWRIGHT = "playwright-core@1.65.1"
NODE_MODULES_HOME = pathlib.Path.home() / ".cache" / "metrika_offline_conversions" / "screenshots"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
OUT = REPO / ADDON / "static" / "description"
# A well-formed ClientID that is not one of the stand-in's visitors (stand_in_runner's).
UNKNOWN_CLIENT_ID = "1690000000987654321"


def install(database):
    # sale_management makes the Sales app's menu active: the Yandex Metrica menu, and its
    # Dashboard, sit under it (with sale alone, they are reachable by address only).
    subprocess.run(install_command(database, (ADDON, "sale_management")), check=True)


def make_demo_data(database, stand_in):
    """The records the screenshots show (the shop of scripts/demo_shop.py, sending goal-based
    conversions, the method whose outcome Metrica reports); returns their ids."""
    with demo_shop.open_env(database) as env:
        # Imported once Odoo's registry is loaded, as the sandbox does.
        from odoo.addons.metrika_offline_conversions import const  # noqa: PLC0415

        demo_shop.configure_company(
            env,
            stand_in,
            metrika_transport=const.TRANSPORT_OFFLINE,
            metrika_goal_in_progress=GOAL_IN_PROGRESS,
            metrika_goal_paid=GOAL_PAID,
            metrika_goal_cancelled=GOAL_CANCELLED,
        )
        shop = demo_shop.Shop(env)
        lead = shop.lead(
            "Corner sofa for the new flat",
            shop.anna,
            84900.0,
            metrika_client_id=CLIENT_ID,
            metrika_yclid=YCLID,
        )
        # The lead's quotation carries its identifiers; the others are sales of the week.
        lead_order = shop.order(
            shop.anna,
            shop.sofa,
            opportunity_id=lead.id,
            metrika_client_id=CLIENT_ID,
            metrika_yclid=YCLID,
        )
        lead_order.action_confirm()
        shop.order(shop.oleg, shop.chair, 2, metrika_client_id=SECOND_CLIENT_ID).action_confirm()
        # A click Metrica does not know, in a file of its own: sent, not linked.
        shop.order(shop.oleg, shop.sofa, metrika_yclid=UNKNOWN_YCLID).action_confirm()
        # Nothing to link it by: skipped.
        shop.order(shop.walk_in, shop.chair).action_confirm()
        cancelled = shop.order(shop.maria, shop.table, metrika_client_id=THIRD_CLIENT_ID)
        cancelled.action_confirm()
        cancelled._action_cancel()
        # A script, not a request: it commits its data itself, as the upload cron commits its own
        # work (the queue is written at commit, and the server started later must see it all).
        env.cr.commit()

        # Real uploads to the stand-in, which processes them at once: linked, and not linked.
        upload_and_check(env)
        # Then a visitor Metrica knows and one it does not, in one file: partly linked.
        shop.order(shop.oleg, shop.table, metrika_client_id=SECOND_CLIENT_ID).action_confirm()
        shop.order(shop.maria, shop.table, metrika_client_id=UNKNOWN_CLIENT_ID).action_confirm()
        env.cr.commit()
        upload_and_check(env)
        upload = env["metrika.upload"].search([], order="id desc", limit=1)
        # The next file is refused once.
        shop.order(shop.maria, shop.chair, metrika_client_id=THIRD_CLIENT_ID).action_confirm()
        env.cr.commit()
        stand_in.fail_next(400, path="/offline_conversions/upload")
        env["metrika.conversion"]._cron_upload()
        # Queued after the last upload: waits for the next one.
        shop.order(shop.anna, shop.sofa, metrika_client_id=CLIENT_ID).action_confirm()
        env.cr.commit()
        # The health panel shows a real check against the stand-in, as "Check connection" does;
        # the dashboard reads materialized views, brought up to date as its cron does.
        env["metrika.connection.health"]._metrika_check(env.company)
        env["metrika.conversion.report"]._cron_refresh_dashboard()
        env.cr.commit()
        return {"lead": lead.id, "order": lead_order.id, "upload": upload.id}


def upload_and_check(env):
    """What the upload cron does with the queue, then its status check, due now rather than
    10 minutes later: reads what Metrica linked."""
    Conversion = env["metrika.conversion"]
    for _call in range(10):
        if not Conversion._cron_upload():
            break
        env.cr.commit()
    env["metrika.upload"].search([("next_poll_at", "!=", False)]).write(
        {"next_poll_at": fields.Datetime.now()}
    )
    Conversion._cron_upload()
    env.cr.commit()


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
        {
            "name": "upload",
            "path": f"/odoo/action-{ADDON}.metrika_upload_action/{ids['upload']}",
            "waitFor": ".o_form_view .o_notebook",
        },
        {
            "name": "health",
            "path": f"/odoo/action-{ADDON}.metrika_settings_action",
            "waitFor": "#metrika_health",
            "centre": "#metrika_health",
        },
        {
            "name": "dashboard",
            "path": f"/odoo/action-{ADDON}.metrika_conversion_report_action",
            "waitFor": ".o_graph_view canvas",
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
    # The sandbox's stand-in (its goals, the shop's visitors), on a free port, processing at once.
    stand_in = start_stand_in(port=0, processing_delay=0)
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
