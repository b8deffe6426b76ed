#!/usr/bin/env python3
"""Does every conversion reach Metrica once, under faults, two workers and a killed worker?

One fresh database with the addon, its company configured to send to the Metrica stand-in
(``tests/metrika_stand_in.py``), served from a thread of this process on 127.0.0.1. For each
upload method (``simple_orders``, goal-based ``offline_conversions`` with a ClientID on every
order and the three goals set, and the detailed ``cdp_detailed``: contacts, then orders), three
phases, each on its own new orders (default 10,000;
customers and confirmed orders are written by SQL, their conversions queued by the addon itself,
through the orders' "send now" action):

1. **faults**: the stand-in fails 30% of all requests at random, half before storing anything
   (503, 504, a dropped connection) and half after storing the file with the answer lost;
   one worker drains the queue;
2. **two workers**: the same faults, two worker processes draining one queue at the same time;
3. **kill**: no random faults; a worker is killed (SIGKILL) during its third upload request,
   after the stand-in stored the file and before the worker could read the answer or commit
   (the stand-in holds the answer back until the worker is dead); then a fresh worker finishes
   the queue.

A worker is a separate OS process (its own registry and cursors) that runs the upload cron the
way Odoo's cron thread does: ``ir.cron._run_job`` (progress record, the cron's server action,
``model._cron_upload()`` as the cron's user, called again while it reports work remaining, at
most 10 times) in a loop until no conversion of the database is left open (``pending`` or any
state other than sent, error, skipped and cancelled), bounded by ``--phase-timeout``. The
script is tolerant of retry delays: when a run settled no row while rows are still open, the
worker moves ``next_attempt_at`` of the pending rows that are not yet due to now, and waits
half a second before the next run. Nothing else of the addon's state is touched, so the
delays of the addon's own recovery (e.g. an in-flight upload settled only once older than the
request timeout) are waited for, within the phase timeout.

Measured per method and phase, from what the stand-in stored (its own counters of stored rows:
a goal hit is (identifier, goal, time), a ``simple_orders`` or detailed order row its order id):

* **delivered**: distinct rows stored / conversions queued (target 100%);
* **duplicates**: goal hits stored more than once (target 0); for ``simple_orders`` and the
  detailed orders the order ids stored more than once are printed, but a repeated ``SAVE`` of
  the same order is harmless;
* **rows in error**: conversions of the phase in state ``error`` (target 0); besides, every
  conversion must have left ``pending``.

    python3 benchmarks/bench_reliability.py [--conversions N] [--batch-size B] [--fault-rate R]
        [--seed S] [--methods simple_orders,offline_conversions,cdp_detailed]
        [--phases faults,two,kill]
        [--phase-timeout SECONDS]

Exits 1 when a target is missed. Run time on 2 cores: a few minutes (installing the database
takes one of them).
"""

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from odoo_bench import (
    ADDON,
    STAND_IN_PATH,
    Databases,
    LoggedProcess,
    code_line,
    machine_line,
    open_registry,
)

TOKEN = "bench-token"
COUNTER_ID = 12345
CRON_XMLID = "metrika_offline_conversions.ir_cron_metrika_upload"
SIMPLE_ORDERS = "simple_orders"
OFFLINE = "offline_conversions"
CDP_DETAILED = "cdp_detailed"
METHODS = (SIMPLE_ORDERS, OFFLINE, CDP_DETAILED)
# Goals of the stand-in's default counter (JavaScript-event goals).
GOALS = {
    "metrika_goal_in_progress": "crm_qualified_lead",
    "metrika_goal_paid": "crm_deal_won",
    "metrika_goal_cancelled": "crm_deal_lost",
}
FINAL_STATES = ("sent", "error", "skipped", "cancelled")
UPLOAD_PATHS = {
    SIMPLE_ORDERS: "/data/simple_orders",
    OFFLINE: "/offline_conversions/upload",
    # The detailed method's orders (its contacts went before them).
    CDP_DETAILED: "/data/orders/csv",
}
PHASES = ("faults", "two", "kill")


def load_stand_in_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("metrika_stand_in", STAND_IN_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# The database: orders and their queued conversions
# ---------------------------------------------------------------------------------------------


def configure_company(registry, url, transport, batch_size):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        env.company.write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": str(COUNTER_ID),
                "metrika_token": TOKEN,
                "metrika_api_url": url,
                "metrika_batch_size": batch_size,
                "metrika_transport": transport,
                # The stand-in's counter has no status mapping yet.
                "metrika_status_mapping_fingerprint": False,
                **GOALS,
            }
        )
        assert env.company._metrika_is_configured()


def make_orders(registry, count, tag):
    """``count`` customers and confirmed orders by SQL, each order with its own ClientID.

    Returns ``{order id: ClientID}``. ``tag`` (a small number) keeps phases apart: names,
    e-mails and ClientIDs of each phase are its own.
    """
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env.company
        params = {
            "count": count,
            "tag": str(tag),
            "company": company.id,
            "currency": company.currency_id.id,
            "uid": SUPERUSER_ID,
            "salesman": env.ref("base.user_admin").id,
            # 19 digits: 10 of a Unix time, the tag, then the order's number.
            "client_base": (1_700_000_000 * 10**9) + tag * 10**7,
        }
        cr.execute(
            """
            INSERT INTO res_partner (
                name, complete_name, email, email_normalized, phone, type, lang, active,
                is_company, employee, partner_share, customer_rank, supplier_rank, autopost_bills,
                create_uid, write_uid, create_date, write_date)
            SELECT 'Reliability ' || %(tag)s || '-' || n, 'Reliability ' || %(tag)s || '-' || n,
                   'reliability.' || %(tag)s || '.' || n || '@example.com',
                   'reliability.' || %(tag)s || '.' || n || '@example.com',
                   '+7 9' || lpad(((n * 7919) %% 1000000000)::text, 9, '0'),
                   'contact', 'en_US', TRUE, FALSE, FALSE, TRUE, 1, 0, 'ask',
                   %(uid)s, %(uid)s, now() at time zone 'UTC', now() at time zone 'UTC'
            FROM generate_series(1, %(count)s) AS n
            RETURNING id
            """,
            params,
        )
        partner_ids = [row[0] for row in cr.fetchall()]
        cr.execute(
            "UPDATE res_partner SET commercial_partner_id = id WHERE id = ANY(%s)", [partner_ids]
        )
        # Confirmed in the last hour: well inside every window of Metrica's.
        cr.execute(
            """
            INSERT INTO sale_order (
                name, state, partner_id, partner_invoice_id, partner_shipping_id, company_id,
                currency_id, currency_rate, user_id, invoice_status, date_order, validity_date,
                amount_untaxed, amount_tax, amount_total, locked, require_signature,
                require_payment, prepayment_percent, metrika_client_id,
                create_uid, write_uid, create_date, write_date)
            SELECT 'REL' || %(tag)s || '/' || lpad(p.n::text, 6, '0'), 'sale', p.id, p.id, p.id,
                   %(company)s, %(currency)s, 1.0, %(salesman)s, 'to invoice', p.created,
                   (p.created + interval '30 days')::date,
                   p.amount, 0, p.amount, FALSE, FALSE, FALSE, 1.0,
                   (%(client_base)s + p.n)::text,
                   %(uid)s, %(uid)s, p.created, p.created
            FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS n,
                       (now() at time zone 'UTC') - interval '1 hour' AS created,
                       round((10 + random() * 4990)::numeric, 2) AS amount
                FROM res_partner WHERE id = ANY(%(partners)s)
            ) p
            ORDER BY p.n
            RETURNING id, metrika_client_id
            """,
            dict(params, partners=partner_ids),
        )
        orders = dict(cr.fetchall())
    with registry.cursor() as cr:
        cr.execute("ANALYZE res_partner, sale_order")
    return orders


def queue_conversions(registry, order_ids):
    """The addon queues the orders' conversions itself (its "send now" action, per chunk)."""
    from odoo import SUPERUSER_ID, api

    ids = sorted(order_ids)
    for start in range(0, len(ids), 2000):
        with registry.cursor() as cr:  # commits on exit
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["sale.order"].browse(ids[start : start + 2000]).action_metrika_send_now()
    with registry.cursor() as cr:
        cr.execute(
            "SELECT state, COUNT(*) FROM metrika_conversion WHERE sale_order_id = ANY(%s) "
            "GROUP BY state",
            [ids],
        )
        states = dict(cr.fetchall())
        cr.execute("ANALYZE metrika_conversion")
    return states


def conversion_states(registry, order_ids):
    with registry.cursor() as cr:
        cr.execute(
            "SELECT state, COALESCE(failure_reason, ''), COUNT(*) FROM metrika_conversion "
            "WHERE sale_order_id = ANY(%s) GROUP BY 1, 2 ORDER BY 1, 2",
            [sorted(order_ids)],
        )
        return cr.fetchall()


# ---------------------------------------------------------------------------------------------
# The stand-in: what it stored, and a kill at the right moment
# ---------------------------------------------------------------------------------------------


class UploadWatch:
    """Calls ``kill.stored()`` when the stand-in has stored an upload of the kill phase's kind.

    It wraps the stand-in's router, the point where a request is stored (its own counters of
    stored rows are updated there too), so a kill can come after the store and before the
    answer leaves.
    """

    def __init__(self, stand_in):
        self.kill = None  # the KillSwitch of the kill phase, while armed
        self.route = stand_in._route
        stand_in._route = self._route

    def _route(self, rec):
        answer = self.route(rec)
        kill = self.kill
        if kill is not None and rec.method == "POST" and answer[0] == 200:
            if rec.path.endswith(UPLOAD_PATHS[kill.kind]):
                kill.stored()
        return answer


class KillSwitch:
    """Holds back the answer to the ``at``-th stored upload of ``kind`` until the worker is dead."""

    def __init__(self, kind, at):
        self.kind = kind
        self.at = at
        self.count = 0
        self.lock = threading.Lock()
        self.fired = threading.Event()
        self.released = threading.Event()

    def stored(self):
        with self.lock:
            self.count += 1
            hold = self.count == self.at
        if hold:
            self.fired.set()
            # The file is stored; the worker waits for the answer, its transaction open.
            self.released.wait(60)


# ---------------------------------------------------------------------------------------------
# Workers: separate processes running the upload cron as Odoo's cron thread does
# ---------------------------------------------------------------------------------------------


def count_open(registry):
    """Conversions of the database not yet in a final state (pending, being sent, ...)."""
    with registry.cursor() as cr:
        cr.execute("SELECT COUNT(*) FROM metrika_conversion WHERE state NOT IN %s", [FINAL_STATES])
        return cr.fetchone()[0]


def nudge(registry):
    """Make the pending rows not yet due due now (the tolerance of retry delays, see above).

    Rows another worker holds are skipped; a row it changed since our snapshot makes the whole
    statement fail under REPEATABLE READ, and is left to the next nudge. Returns whether rows
    were moved.
    """
    import psycopg2.errors

    with registry.cursor() as cr:
        try:
            cr.execute(
                "UPDATE metrika_conversion SET next_attempt_at = now() at time zone 'UTC' "
                "WHERE id IN (SELECT id FROM metrika_conversion WHERE state = 'pending' "
                "AND next_attempt_at > now() at time zone 'UTC' FOR UPDATE SKIP LOCKED)",
                log_exceptions=False,
            )
        except psycopg2.errors.SerializationFailure:
            cr.rollback()
            return False
        return cr.rowcount > 0


def worker_main(database, deadline_seconds, name):
    """Run the upload cron until nothing is open; print one JSON line of figures."""
    from odoo import SUPERUSER_ID, api

    registry = open_registry(database)
    cron_model = registry["ir.cron"]
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        cron = env.ref(CRON_XMLID)
        job = {
            "id": cron.id,
            "cron_name": cron.cron_name,
            "user_id": cron.user_id.id,
            "lastcall": cron.lastcall,
            "ir_actions_server_id": cron.ir_actions_server_id.id,
            "timed_out_counter": 0,
            "active": True,
        }
    print(json.dumps({"worker": name, "ready": True}), flush=True)
    started = time.monotonic()
    runs = nudges = 0
    open_rows = count_open(registry)
    while open_rows and time.monotonic() - started < deadline_seconds:
        cron_model._run_job(dict(job))
        runs += 1
        before, open_rows = open_rows, count_open(registry)
        if open_rows and open_rows >= before:
            # Nothing settled by this run (rows wait for a retry, or for another worker).
            nudges += nudge(registry)
            time.sleep(0.5)
    print(
        json.dumps(
            {
                "worker": name,
                "runs": runs,
                "nudges": nudges,
                "open": open_rows,
                "seconds": round(time.monotonic() - started, 1),
            }
        ),
        flush=True,
    )
    return 0


class Worker(LoggedProcess):
    """A worker process; its log (Odoo's warnings included) goes to a temporary file."""

    def __init__(self, database, name, deadline):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench_reliability_%s_" % name)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                database,
                "--phase-timeout",
                str(deadline),
                "--worker-name",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )

    def wait_ready(self, timeout=120):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("worker %s died while starting:\n%s" % (self.name, self.log_tail()))
        return json.loads(line)

    def finish(self, timeout):
        try:
            out, _err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _err = self.proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"worker": self.name}
        result["exit"] = self.proc.returncode
        result["errors"] = self.error_lines()
        return result

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------


def run_phase(registry, stand_in, watch, args, method, phase, tag):
    database = registry.db_name
    started = time.monotonic()
    orders = make_orders(registry, args.conversions, tag)
    queued = queue_conversions(registry, orders)
    queued_count = sum(queued.values())
    setup_seconds = time.monotonic() - started
    faults = phase in ("faults", "two") and args.fault_rate > 0
    with stand_in._lock:
        injected_before = collections.Counter(stand_in.random_failures)
        requests_before = len(stand_in.requests)
    if faults:
        stand_in.fail_randomly(args.fault_rate, seed=args.seed + tag, modes=("before", "after"))
    workers, notes = [], []
    started = time.monotonic()
    try:
        if phase == "kill":
            kill = KillSwitch(method, args.kill_at_upload)
            watch.kill = kill
            first = Worker(database, "%s-killed" % method, args.phase_timeout)
            workers.append(first)
            first.wait_ready()
            if not kill.fired.wait(args.phase_timeout):
                notes.append("the worker never reached upload %d" % args.kill_at_upload)
            first.kill()
            kill.released.set()
            watch.kill = None
            notes.append("worker killed during upload %d, after the stand-in stored it" % kill.at)
            workers.append(Worker(database, "%s-fresh" % method, args.phase_timeout))
        else:
            count = 2 if phase == "two" else 1
            workers += [
                Worker(database, "%s-%s-%d" % (method, phase, number), args.phase_timeout)
                for number in range(1, count + 1)
            ]
        results = [
            {"worker": worker.name, "exit": worker.proc.returncode, "errors": worker.error_lines()}
            if worker.proc.returncode is not None  # the killed one
            else worker.finish(args.phase_timeout + 120)
            for worker in workers
        ]
    finally:
        if faults:
            stand_in.fail_randomly(0.0)
        watch.kill = None
        for worker in workers:
            worker.close()
    drain_seconds = time.monotonic() - started
    with stand_in._lock:
        injected = collections.Counter(stand_in.random_failures)
        injected.subtract(injected_before)
        requests = len(stand_in.requests) - requests_before
    with stand_in._lock:
        offline = collections.Counter(stand_in.stored_offline_rows)
        simple = collections.Counter(stand_in.stored_order_ids)
        detailed = collections.Counter(
            order_id
            for (_counter, order_id), times in stand_in.stored_detailed_order_ids.items()
            for _time in range(times)
        )
    # One conversion per order, so per order: its goal hits (any time) or its stored rows.
    per_order = collections.Counter()
    if method == OFFLINE:
        mine = set(orders.values())
        for (client_id, _target, _stamp), times in offline.items():
            if client_id in mine:
                per_order[client_id] += times
    else:
        mine = {"so-%d" % order_id for order_id in orders}
        for order_id, times in (detailed if method == CDP_DETAILED else simple).items():
            if order_id in mine:
                per_order[order_id] += times
    counts = list(per_order.values())
    states = conversion_states(registry, orders)
    return {
        "method": method,
        "phase": phase,
        "queued": queued_count,
        "queued_states": queued,
        "delivered": len(counts),
        "repeated": sum(1 for times in counts if times > 1),
        "extra_copies": sum(times - 1 for times in counts),
        "error_rows": sum(n for state, _r, n in states if state == "error"),
        "open_rows": sum(n for state, _r, n in states if state not in FINAL_STATES),
        "states": states,
        "setup_seconds": setup_seconds,
        "drain_seconds": drain_seconds,
        "workers": results,
        "notes": notes,
        "requests": requests,
        "injected": dict(injected),
    }


PHASE_TITLES = {
    "faults": "30% random faults, one worker",
    "two": "30% random faults, two workers at once",
    "kill": "worker killed mid-upload, a fresh one finishes",
}


def report(result, fault_rate):
    method, phase = result["method"], result["phase"]
    title = PHASE_TITLES[phase].replace("30%", "%g%%" % (100 * fault_rate))
    queued = result["queued"]
    print("%s / %s (%s):" % (method, phase, title))
    print(
        "  %d conversions queued in %.0f s, drained in %.0f s"
        % (queued, result["setup_seconds"], result["drain_seconds"])
    )
    print(
        "  delivered %d / %d (%.2f%%); %s %d (%d extra copies); rows in error %d; still open %d"
        % (
            result["delivered"],
            queued,
            100.0 * result["delivered"] / queued if queued else 0.0,
            "duplicate goal hits"
            if method == OFFLINE
            else "order ids saved more than once (harmless)",
            result["repeated"],
            result["extra_copies"],
            result["error_rows"],
            result["open_rows"],
        )
    )
    print(
        "  stand-in: %d requests, random faults injected: %d before storing, %d after storing "
        "(answer lost)"
        % (
            result["requests"],
            result["injected"].get("before", 0),
            result["injected"].get("after", 0),
        )
    )
    print(
        "  states: %s"
        % ", ".join(
            "%s%s %d" % (state, "/" + reason if reason else "", n)
            for state, reason, n in result["states"]
        )
    )
    for worker in result["workers"]:
        print(
            "  worker %s: exit %s, %s cron runs, %s nudges, %s s, %d ERROR lines in its log"
            % (
                worker.get("worker"),
                worker.get("exit"),
                worker.get("runs", "?"),
                worker.get("nudges", "?"),
                worker.get("seconds", "?"),
                len(worker["errors"]),
            )
        )
        for line in worker["errors"][:5]:
            print("    " + line[:300])
    for note in result["notes"]:
        print("  note: " + note)
    failures = []
    label = "%s/%s" % (method, phase)
    if not queued or result["queued_states"].get("pending", 0) != queued:
        failures.append("%s: queued %s, not all pending" % (label, result["queued_states"]))
    if result["delivered"] != queued:
        failures.append("%s: delivered %d of %d" % (label, result["delivered"], queued))
    if method == OFFLINE and result["repeated"]:
        failures.append("%s: %d goal hits stored more than once" % (label, result["repeated"]))
    if result["error_rows"]:
        failures.append("%s: %d rows in error" % (label, result["error_rows"]))
    if result["open_rows"]:
        failures.append("%s: %d rows still open" % (label, result["open_rows"]))
    for worker in result["workers"]:
        if worker.get("exit") != 0 and not worker["worker"].endswith("-killed"):
            failures.append("%s: worker %s exited %s" % (label, worker["worker"], worker["exit"]))
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversions", type=int, default=10_000, help="per phase (10000)")
    parser.add_argument("--batch-size", type=int, default=250, help="conversions per upload (250)")
    parser.add_argument("--fault-rate", type=float, default=0.3, help="random faults (0.3)")
    parser.add_argument("--seed", type=int, default=8, help="of the random faults (8)")
    parser.add_argument("--methods", default=",".join(METHODS), help="upload methods (all three)")
    parser.add_argument("--phases", default=",".join(PHASES), help="faults,two,kill (all)")
    parser.add_argument(
        "--kill-at-upload", type=int, default=3, help="the upload the killed worker dies in (3)"
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=600, help="seconds a worker may take (600)"
    )
    parser.add_argument(
        "--database",
        help="an existing database with the addon installed, used instead of a fresh one "
        "(not dropped; its queue must be empty)",
    )
    parser.add_argument("--worker", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument("--worker-name", default="worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker, args.phase_timeout, args.worker_name)
    methods = [m for m in args.methods.split(",") if m]
    phases = [p for p in args.phases.split(",") if p]
    if set(methods) - set(METHODS) or set(phases) - set(PHASES):
        parser.error("unknown method or phase")
    print(machine_line(), flush=True)
    print(code_line(), flush=True)

    module = load_stand_in_module()
    failures, results = [], []
    with Databases("reliability") as dbs, module.MetrikaStandIn(token=TOKEN) as stand_in:
        watch = UploadWatch(stand_in)
        started = time.monotonic()
        if args.database:
            database = args.database
        else:
            (database,) = dbs.install({"addon": ADDON})
            print("installed %s in %.0f s" % (database, time.monotonic() - started), flush=True)
        registry = open_registry(database)
        tag = 0
        for method in methods:
            configure_company(registry, stand_in.url, method, args.batch_size)
            for phase in phases:
                tag += 1
                result = run_phase(registry, stand_in, watch, args, method, phase, tag)
                failures += report(result, args.fault_rate)
                results.append(result)
                sys.stdout.flush()

    print()
    print("summary (target: 100% delivered, 0 duplicate goal hits, 0 rows in error):")
    for result in results:
        queued = result["queued"]
        print(
            "  %-20s %-6s delivered %6.2f%%  duplicates %5d%s  errors %d"
            % (
                result["method"],
                result["phase"],
                100.0 * result["delivered"] / queued if queued else 0.0,
                result["repeated"],
                "" if result["method"] == OFFLINE else " (SAVE repeats, harmless)",
                result["error_rows"],
            )
        )
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
