"""The sandbox: Odoo with the addon on a fresh database, a demo shop sending to a local Metrica.

What ``scripts/run_server.sh`` runs by default (``--real`` or ``SANDBOX=0`` starts Odoo alone):

1. starts the Metrica stand-in (scripts/stand_in_runner.py) on 127.0.0.1, which processes
   goal-based uploads a couple of minutes after they arrive, as Metrica does;
2. installs the addon on a fresh database and makes a small shop's data (scripts/demo_shop.py):
   the last weeks' orders and leads made while sending was off, sent as the history at
   connection (with a preview printed here), then a few sales made with sending on; the upload
   runs once here, so the sync log already shows what Metrica did with them;
3. runs Odoo (its scheduler on) until Ctrl-C, then stops both.

Usage: ``python3 scripts/sandbox.py DATABASE [HTTP_PORT] [odoo options...]``; the stand-in's
port is ``STAND_IN_PORT`` (default 8079). Needs PostgreSQL and the Odoo of this interpreter.
"""

import os
import re
import signal
import subprocess
import sys

import stand_in_runner
from odoo_env import ADDON, install_command, odoo_command, wait_for_postgres

# The last weeks' uploads are processed at once (the sandbox does not wait Metrica's two hours
# for them), and checked at once instead of 10 minutes later.
SEED_PROCESSING_DELAY = 0


def database_exists(name):
    listed = subprocess.run(
        ["psql", "--dbname", "postgres", "--no-psqlrc", "-tAc", "SELECT datname FROM pg_database"],
        capture_output=True,
        text=True,
        check=True,
    )
    return name in listed.stdout.split()


def seed(database, stand_in):
    """The shop's data, its history sent at connection, and a first upload; prints the preview."""
    # Odoo is imported only here: the stand-in runner itself needs none.
    import demo_shop  # noqa: PLC0415

    with demo_shop.open_env(database) as env:
        from odoo import fields  # noqa: PLC0415

        from odoo.addons.metrika_offline_conversions import const  # noqa: PLC0415

        company = demo_shop.configure_company(
            env,
            stand_in,
            metrika_enabled=False,
            metrika_transport=const.TRANSPORT_OFFLINE,
            metrika_goal_in_progress=stand_in_runner.GOAL_IN_PROGRESS,
            metrika_goal_paid=stand_in_runner.GOAL_PAID,
            metrika_goal_cancelled=stand_in_runner.GOAL_CANCELLED,
        )
        shop = demo_shop.Shop(env)
        make_last_weeks(shop)
        # The administrator turns sending on: the preview of the history, then "Queue them".
        company.metrika_enabled = True
        wizard = env["metrika.history.wizard"]._metrika_open(company)
        wizard = env["metrika.history.wizard"].browse(wizard["res_id"])
        print("sandbox: history at connection:", plain_text(wizard.preview), flush=True)
        wizard.action_metrika_queue_history()
        make_today(shop)
        env.cr.commit()

        stand_in.offline_processing_delay = SEED_PROCESSING_DELAY
        Conversion = env["metrika.conversion"]
        for _call in range(10):
            if not Conversion._cron_upload():
                break
            env.cr.commit()
        env.cr.execute(
            "UPDATE metrika_upload SET next_poll_at = %s WHERE next_poll_at IS NOT NULL",
            (fields.Datetime.now(),),
        )
        env.invalidate_all()
        Conversion._cron_upload()
        # Sold after the first upload: the server's scheduler sends it; and a quotation to
        # confirm by hand.
        shop.order(
            shop.maria, shop.chair, metrika_client_id=stand_in_runner.THIRD_CLIENT_ID
        ).action_confirm()
        shop.order(shop.anna, shop.sofa, metrika_client_id=stand_in_runner.CLIENT_ID)
        env.cr.commit()
        counts = dict(Conversion._read_group([], ["state"], ["__count"]))
        print(f"sandbox: sync log: {counts}", flush=True)


def make_last_weeks(shop):
    """Sales of the last five weeks, made while sending was off."""
    runner = stand_in_runner
    won = shop.lead(
        "Corner sofa for the new flat",
        shop.anna,
        84900.0,
        metrika_client_id=runner.CLIENT_ID,
        metrika_yclid=runner.YCLID,
    )
    shop.backdate(won, 12)
    order = shop.order(shop.anna, shop.sofa, opportunity_id=won.id)
    order.action_confirm()
    shop.backdate(order, 11, "date_order")
    won.action_set_won()
    shop.backdate(won, 12, "date_closed")
    invoice = shop.pay(order)
    shop.backdate(invoice, 8, "write_date")

    confirmed = shop.order(shop.oleg, shop.chair, 2, metrika_client_id=runner.SECOND_CLIENT_ID)
    confirmed.action_confirm()
    shop.backdate(confirmed, 4, "date_order")

    paid = shop.order(shop.maria, shop.table, metrika_client_id=runner.THIRD_CLIENT_ID)
    paid.action_confirm()
    shop.backdate(paid, 3, "date_order")
    shop.backdate(shop.pay(paid), 2, "write_date")

    # A click Metrica does not know: sent, not linked.
    unknown = shop.order(shop.oleg, shop.sofa, metrika_yclid=runner.UNKNOWN_YCLID)
    unknown.action_confirm()
    shop.backdate(unknown, 2, "date_order")
    # Nothing to link it by: skipped.
    shop.order(shop.walk_in, shop.chair).action_confirm()
    # Too old for Metrica: left out of the history.
    old = shop.order(shop.anna, shop.table, metrika_client_id=runner.CLIENT_ID)
    old.action_confirm()
    shop.backdate(old, 35, "date_order")

    lost = shop.lead("Dining set", shop.maria, 56000.0, metrika_client_id=runner.THIRD_CLIENT_ID)
    shop.backdate(lost, 6)
    lost.action_set_lost()
    shop.backdate(lost, 6, "date_closed")


def make_today(shop):
    """Sales made with sending on: queued as they happen."""
    runner = stand_in_runner
    shop.order(shop.anna, shop.chair, metrika_client_id=runner.CLIENT_ID).action_confirm()
    cancelled = shop.order(shop.oleg, shop.table, metrika_client_id=runner.SECOND_CLIENT_ID)
    cancelled.action_confirm()
    cancelled._action_cancel()


def plain_text(html):
    text = re.sub(r"<li>", "\n  - ", str(html))
    text = re.sub(r"</p>|</ul>", "\n", text)
    return "\n" + re.sub(r"<[^>]+>", "", text).strip()


def stop_on_signal(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit(__doc__)
    database, *rest = args
    http_port = rest.pop(0) if rest and rest[0].isdigit() else "8069"
    if not wait_for_postgres():
        raise SystemExit("PostgreSQL does not accept connections; start it first")
    # Stopped like Odoo: Ctrl-C or SIGTERM; Odoo and the stand-in stop with it.
    signal.signal(signal.SIGTERM, stop_on_signal)
    stand_in = stand_in_runner.start_stand_in(
        int(os.environ.get("STAND_IN_PORT", stand_in_runner.DEFAULT_PORT))
    )
    delay = stand_in.offline_processing_delay
    server = None
    try:
        print(f"sandbox: Metrica stand-in at {stand_in.url} (token {stand_in.token})", flush=True)
        if database_exists(database):
            print(f"sandbox: {database} exists: no new data (the stand-in forgot its uploads)")
        else:
            print(f"sandbox: installing {ADDON} on a new database {database}", flush=True)
            subprocess.run(install_command(database, (ADDON,)), check=True)
            seed(database, stand_in)
        stand_in.offline_processing_delay = delay
        print(
            f"sandbox: Odoo at http://127.0.0.1:{http_port} (login admin, password admin); "
            "Ctrl-C stops Odoo and the stand-in",
            flush=True,
        )
        server = subprocess.Popen(odoo_command(database, "--http-port", http_port, *rest))
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
        stand_in.stop()


if __name__ == "__main__":
    sys.exit(main())
