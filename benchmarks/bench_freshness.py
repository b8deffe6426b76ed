#!/usr/bin/env python3
"""How soon a confirmed order reaches Metrica, with a running Odoo server and its cron thread.

One fresh database with the addon, its company configured to send (``simple_orders`` by
default) to the Metrica stand-in (``tests/metrika_stand_in.py``), served from a thread of this
process on 127.0.0.1, which notes when it first stored each order. Draft orders are made
beforehand; then a real Odoo server is started on the database (``python3 -m odoo … --workers 0
--max-cron-threads 1``: the HTTP server and one cron thread, as a small shop runs it), and:

1. **freshness**: 50 orders are confirmed one per XML-RPC call (``sale.order.action_confirm``
   as the administrator: one request, one transaction, as a click in the UI), one every
   ``--interval`` seconds (2 s), so that the confirmations fall at every point of the cron's
   cycle. Measured: the time from each confirmation (its call returned, the transaction
   committed) to the stand-in storing the order; median and p95 (target: p95 at most 60 s).
2. **outage**: the stand-in answers every request 503 for ``--outage`` seconds (600); during
   it 50 more orders are confirmed, spread over its length. Measured: the time from the end of
   the outage until the stand-in stored the whole backlog (target: at most 300 s).

Nothing is nudged: the server's cron thread and the addon's own triggers and retry delays do
all the work. Each wait is bounded (``--max-wait``, 900 s, after the last confirmation or the
end of the outage); an order never stored counts as a miss.

    python3 benchmarks/bench_freshness.py [--orders N] [--interval S] [--outage SECONDS]
        [--backlog-orders N] [--method simple_orders|offline_conversions] [--max-wait S]

``--outage 60`` makes a short run. Prints the machine, the figures and OK or FAIL; exits 1 when
a target is missed.
"""

import argparse
import csv
import io
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xmlrpc.client

from bench_confirm_orders import make_drafts
from bench_reliability import COUNTER_ID, GOALS, TOKEN, load_stand_in_module
from odoo_bench import ADDON, Databases, LoggedProcess, code_line, machine_line, open_registry
from odoo_env import free_port, odoo_command

MAX_P95_SECONDS = 60.0
MAX_BACKLOG_SECONDS = 300.0
RPC_TIMEOUT = 120.0


class StoreClock:
    """When the stand-in first stored each order (simple_orders id, or goal-based ClientID)."""

    def __init__(self, stand_in):
        self.lock = threading.Lock()
        self.first_stored = {}
        self.route = stand_in._route
        stand_in._route = self._route

    def _route(self, rec):
        answer = self.route(rec)
        status, payload = answer[0], answer[1]
        if rec.method != "POST" or status != 200 or not rec.file:
            return answer
        if rec.path.endswith("/data/simple_orders"):
            uploading = payload.get("uploading", {}) if isinstance(payload, dict) else {}
            if uploading.get("api_validation_status") != "PASSED":
                return answer
            column = "id"
        elif rec.path.endswith("/offline_conversions/upload"):
            column = "ClientId"
        else:
            return answer
        now = time.time()
        keys = [row.get(column) for row in csv.DictReader(io.StringIO(rec.file.decode("utf-8")))]
        with self.lock:
            for key in keys:
                self.first_stored.setdefault(key, now)
        return answer

    def stored_at(self, key):
        with self.lock:
            return self.first_stored.get(key)


class TimeoutTransport(xmlrpc.client.Transport):
    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = RPC_TIMEOUT
        return connection


class OdooServer(LoggedProcess):
    """``python3 -m odoo`` on the database: HTTP on 127.0.0.1 and one cron thread."""

    def __init__(self, database):
        self.database = database
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench_freshness_server_")
        command = odoo_command(
            database,
            "--http-interface",
            "127.0.0.1",
            "--http-port",
            str(self.port),
            "--workers",
            "0",
            "--max-cron-threads",
            "1",
            "--log-level",
            "warn",
        )
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % self.port

    def wait_ready(self, seconds=180):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the Odoo server exited:\n" + self.log_tail())
            try:
                with urllib.request.urlopen(self.url + "/web/login", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError("the Odoo server did not answer in %d s" % seconds)

    def rpc(self):
        common = xmlrpc.client.ServerProxy(
            self.url + "/xmlrpc/2/common", transport=TimeoutTransport()
        )
        uid = common.authenticate(self.database, "admin", "admin", {})
        if not uid:
            raise RuntimeError("cannot log in as admin")
        models = xmlrpc.client.ServerProxy(
            self.url + "/xmlrpc/2/object", transport=TimeoutTransport(), allow_none=True
        )
        return uid, models

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def configure_company(registry, url, method):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        env.company.write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(COUNTER_ID),
                "metrika_token": TOKEN,
                "metrika_api_url": url,
                "metrika_transport": method,
                **GOALS,
            }
        )
        assert env.company._metrika_is_configured()


def order_keys(registry, order_ids, method):
    """What the stand-in's file names each order by: ``so-<id>``, or its ClientID."""
    if method == "simple_orders":
        return {order_id: "so-%d" % order_id for order_id in order_ids}
    with registry.cursor() as cr:
        cr.execute(
            "SELECT id, metrika_client_id FROM sale_order WHERE id = ANY(%s)", [list(order_ids)]
        )
        return dict(cr.fetchall())


def give_client_ids(registry, order_ids):
    """Goal-based conversions need a click: a ClientID on every order."""
    with registry.cursor() as cr:
        cr.execute(
            "UPDATE sale_order SET metrika_client_id = (1800000000000000000 + id)::text "
            "WHERE id = ANY(%s)",
            [list(order_ids)],
        )


def confirm(models, database, uid, order_id):
    models.execute_kw(database, uid, "admin", "sale.order", "action_confirm", [[order_id]])
    return time.time()


def wait_stored(clock, keys, deadline):
    """Wait until every key is stored or ``deadline`` (epoch) passes; return the missing."""
    while True:
        missing = [key for key in keys if clock.stored_at(key) is None]
        if not missing or time.time() >= deadline:
            return missing
        time.sleep(0.5)


def p95(values):
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50, help="orders timed (50)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between them (2)")
    parser.add_argument("--outage", type=float, default=600, help="outage seconds (600)")
    parser.add_argument(
        "--backlog-orders", type=int, default=50, help="orders confirmed during the outage (50)"
    )
    parser.add_argument(
        "--method", default="simple_orders", choices=("simple_orders", "offline_conversions")
    )
    parser.add_argument(
        "--max-wait", type=float, default=900, help="longest wait for the stand-in (900 s)"
    )
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)

    module = load_stand_in_module()
    failures = []
    server = None
    with Databases("freshness") as dbs, module.MetrikaStandIn(token=TOKEN) as stand_in:
        clock = StoreClock(stand_in)
        started = time.monotonic()
        (database,) = dbs.install({"addon": ADDON})
        print("installed %s in %.0f s" % (database, time.monotonic() - started), flush=True)
        registry = open_registry(database)
        configure_company(registry, stand_in.url, args.method)
        drafts = make_drafts(registry, args.orders + args.backlog_orders, with_client_ids=True)
        if args.method == "offline_conversions":
            give_client_ids(registry, drafts)
        keys = order_keys(registry, drafts, args.method)
        timed, backlog = drafts[: args.orders], drafts[args.orders :]
        try:
            server = OdooServer(database)
            server.wait_ready()
            uid, models = server.rpc()
            print(
                "Odoo server up (workers 0, 1 cron thread); confirming %d orders, one every "
                "%.1f s" % (len(timed), args.interval),
                flush=True,
            )

            # 1. Freshness
            confirmed = {}
            next_at = time.time()
            for order_id in timed:
                time.sleep(max(0.0, next_at - time.time()))
                confirmed[order_id] = confirm(models, database, uid, order_id)
                next_at += args.interval
            missing = wait_stored(
                clock, [keys[order_id] for order_id in timed], time.time() + args.max_wait
            )
            delays = [
                clock.stored_at(keys[order_id]) - confirmed[order_id]
                for order_id in timed
                if clock.stored_at(keys[order_id]) is not None
            ]
            print(
                "freshness: %d of %d orders stored; confirmation to stored: median %.1f s, "
                "p95 %.1f s, min %.1f s, max %.1f s (target p95 <= %.0f s)"
                % (
                    len(delays),
                    len(timed),
                    statistics.median(delays) if delays else float("nan"),
                    p95(delays) if delays else float("nan"),
                    min(delays) if delays else float("nan"),
                    max(delays) if delays else float("nan"),
                    MAX_P95_SECONDS,
                ),
                flush=True,
            )
            # In the order of confirmation: a slow start shows apart from a slow cycle.
            print(
                "  each, in the order confirmed (s): %s"
                % " ".join("%.1f" % delay for delay in delays),
                flush=True,
            )
            if missing:
                failures.append(
                    "%d orders not stored within %.0f s of the last confirmation"
                    % (len(missing), args.max_wait)
                )
            elif p95(delays) > MAX_P95_SECONDS:
                failures.append("p95 %.1f s is over %.0f s" % (p95(delays), MAX_P95_SECONDS))

            # 2. Outage
            if args.backlog_orders:
                stand_in.outage(True)
                outage_started = time.time()
                print("outage: every request answered 503 for %.0f s" % args.outage, flush=True)
                step = args.outage / (len(backlog) + 1)
                for number, order_id in enumerate(backlog, 1):
                    time.sleep(max(0.0, outage_started + number * step - time.time()))
                    confirm(models, database, uid, order_id)
                time.sleep(max(0.0, outage_started + args.outage - time.time()))
                with stand_in._lock:
                    refused = sum(1 for rec in stand_in.requests if rec.failure == "outage")
                stand_in.outage(False)
                outage_ended = time.time()
                backlog_keys = [keys[order_id] for order_id in backlog]
                early = [key for key in backlog_keys if clock.stored_at(key) is not None]
                missing = wait_stored(clock, backlog_keys, outage_ended + args.max_wait)
                done_at = max(
                    (clock.stored_at(key) for key in backlog_keys if clock.stored_at(key)),
                    default=None,
                )
                recovery = done_at - outage_ended if done_at and not missing else None
                print(
                    "outage of %.0f s: %d requests refused during it; %d orders confirmed "
                    "during it, %d stored before it ended; backlog sent %s after the outage "
                    "ended (target <= %.0f s)"
                    % (
                        outage_ended - outage_started,
                        refused,
                        len(backlog),
                        len(early),
                        "%.1f s" % recovery
                        if recovery is not None
                        else "NOT within %.0f s (%d missing)" % (args.max_wait, len(missing)),
                        MAX_BACKLOG_SECONDS,
                    ),
                    flush=True,
                )
                if early:
                    failures.append("%d orders stored during the outage" % len(early))
                if recovery is None:
                    failures.append(
                        "%d backlog orders not stored within %.0f s" % (len(missing), args.max_wait)
                    )
                elif recovery > MAX_BACKLOG_SECONDS:
                    failures.append(
                        "the backlog took %.1f s, over %.0f s" % (recovery, MAX_BACKLOG_SECONDS)
                    )
            errors = server.error_lines()
            print("server log: %d ERROR lines" % len(errors))
            for line in errors[:5]:
                print("  " + line[:300])
        finally:
            if server is not None:
                server.stop()

    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("OK (p95 <= %.0f s, backlog <= %.0f s)" % (MAX_P95_SECONDS, MAX_BACKLOG_SECONDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
