#!/usr/bin/env python3
"""What the addon adds to confirming sale orders: SQL statements per action, time per order.

Two fresh databases: one with ``sale_crm`` only (the addon's dependency), one with
``metrika_offline_conversions`` and its company configured to send (enabled, counter, token, the
API URL of a Metrica stand-in run in a child process). In each, N draft orders (default 1,000; one
line each, partners with a phone and an e-mail, a third of the addon's orders with a ClientID) are
created and committed.

Statements per action. The addon queues a conversion with one ``INSERT … ON CONFLICT DO UPDATE …
RETURNING`` per action (per call of ``metrika.conversion._metrika_enqueue``), whatever the number
of orders. First, in each database, one action confirms the first K drafts (``action_confirm()``
on the recordset, as the administrator, in a transaction of its own) and what a commit runs before
COMMIT follows (the ORM flush and the precommit hooks); every statement run is counted (Odoo's
``Cursor.execute`` wrapped, see ``odoo_bench.StatementLog``), then the transaction is rolled back.
Each size K (default 1, 10 and 50) runs once unmeasured (caches), then measured. The statements of
the cron trigger (``_metrika_trigger_slot``, a precommit hook whose statements run once per
10-second slot and process) are counted apart and printed; the statements the addon adds are the
rest of the addon's side less the side without the addon, and the kinds (verb and table) whose
counts differ are printed.

Time per order. Per round, ``action_confirm()`` is called one order at a time for all of them
(each order browsed on its own) followed by a final flush, by default in one transaction per
database that is rolled back, so the next round confirms the same drafts again (see below for one
transaction per order). Within a round the two databases take turns every 10 orders (each keeps
its own cursor), so that load from elsewhere on a shared machine hits both sides alike. Each round
gives one paired figure, the time per order with the addon less the time per order without it in
that round; the median of these differences is the added time checked, printed in ms and as a
percentage of the median time per order without the addon. An untimed warm-up round comes first.
Besides wall time, CPU time per order is printed the same way (this thread's plus the PostgreSQL
backend's, read from /proc): it is much less sensitive to other load. Statements per order in the
rounds are printed too (each order is an action of its own there). A last, instrumented round
times what is spent inside ``_metrika_enqueue``.

In every round and measured action the addon's side must have queued exactly one conversion row
per confirmed order (rows of ``metrika_conversion`` for those orders, counted before they are
undone, so the check cannot pass vacuously), and the stand-in must have received no request at
all: confirming never talks to Metrica.

    python3 benchmarks/bench_confirm_orders.py [--orders N] [--rounds R] [--chunk C] [--sending-off]
                                               [--commit-each | --savepoint-each] [--actions K,K]

By default the round's flush (what a commit runs before COMMIT: the ORM flush, which writes the
orders' UPDATE, and the precommit hooks) is timed once at the end, as when many orders are
confirmed in one transaction. ``--commit-each`` commits after every order, as when each
confirmation is its own request: the flush, COMMIT, and a cold ORM cache for the next order;
between rounds (untimed) the drafts are restored from a copy taken when they were made, the rows
confirming added (messages, followers, conversions, cron triggers) are deleted and the database
is vacuumed, so every round starts from the same state. ``--savepoint-each`` runs the flush after
every order in a flushing savepoint instead (no COMMIT, the cache stays warm; rolled back like the
default mode): an approximation kept to compare with earlier figures.

Exits 1 when a target is missed: more than one statement added per action (for any K, the cron
trigger's left out), more than 1.0 ms added per order (wall time, median of the paired
differences), or anything received by the stand-in.
"""

import argparse
import collections
import gc
import os
import statistics
import subprocess
import sys
import time

from odoo_bench import (
    ADDON,
    Databases,
    StandInProcess,
    StatementLog,
    code_line,
    machine_line,
    open_registry,
    statement_kind,
)

# The targets: at most one statement added per action, whatever the number of orders it confirms
# (the cron trigger's few statements, once per time slot and process, left out: they are counted
# and printed apart), and at most 1.0 ms of wall time added per order.
MAX_ADDED_STATEMENTS_PER_ACTION = 1
MAX_ADDED_MS_PER_ORDER = 1.0
ACTION_SIZES = (1, 10, 50)
TOKEN = "bench-token"
ADMIN_UID = 2  # base.user_admin: a real user, record rules and access rights apply
CONVERSION_MODEL = "metrika.conversion"
TRIGGER_METHOD = "_metrika_trigger_slot"
ENQUEUE_METHOD = "_metrika_enqueue"


def make_drafts(registry, count, with_client_ids):
    """Create ``count`` draft orders with one line each and commit; return their ids."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        product = env["product.product"].create(
            {
                "name": "Bench widget",
                "type": "consu",
                "list_price": 100.0,
            }
        )
        partners = env["res.partner"].create(
            [
                {
                    "name": "Customer %d" % index,
                    "email": "Customer.%d@Example.com" % index,
                    "phone": "+7 (9%02d) %03d-%02d-%02d"
                    % (index % 100, index % 1000, index % 97, index % 89),
                }
                for index in range(count)
            ]
        )
        values = []
        for index, partner in enumerate(partners):
            vals = {
                "partner_id": partner.id,
                "user_id": ADMIN_UID,
                "order_line": [
                    (
                        0,
                        0,
                        {
                            "product_id": product.id,
                            "product_uom_qty": 1 + index % 5,
                            "price_unit": 100.0 + index % 50,
                        },
                    )
                ],
            }
            if with_client_ids and index % 3 == 0:
                vals["metrika_client_id"] = "%d%09d" % (1_700_000_000 + index, index * 7919 % 10**9)
            values.append(vals)
        orders = env["sale.order"].create(values)
        env.flush_all()
        assert set(orders.mapped("state")) == {"draft"}
        return orders.ids


# What confirming changes in place (restored from a copy), and where it adds rows (deleted).
SNAPSHOT_TABLES = {"sale_order": "id", "sale_order_line": "order_id"}
ADDED_ROWS_TABLES = (
    "mail_message",
    "mail_followers",
    "bus_bus",
    "ir_cron_trigger",
    "metrika_conversion",
)


def snapshot_drafts(registry, order_ids):
    """Copy the drafts aside; return the last id of each table confirming adds rows to."""
    with registry.cursor() as cr:  # commits on exit
        for table, key in SNAPSHOT_TABLES.items():
            cr.execute(
                'CREATE TABLE "bench_draft_%s" AS SELECT * FROM "%s" WHERE "%s" = ANY(%%s)'
                % (table, table, key),
                [list(order_ids)],
            )
        marks = {}
        for table in ADDED_ROWS_TABLES:
            cr.execute("SELECT to_regclass(%s)", [table])
            if cr.fetchone()[0]:
                cr.execute('SELECT COALESCE(MAX(id), 0) FROM "%s"' % table)
                marks[table] = cr.fetchone()[0]
        return marks


def restore_drafts(cr, marks):
    """Put the drafts back as :func:`snapshot_drafts` copied them (in ``cr``'s transaction)."""
    for table in SNAPSHOT_TABLES:
        cr.execute('SELECT * FROM "bench_draft_%s" LIMIT 0' % table)
        columns = [column.name for column in cr.description if column.name != "id"]
        cr.execute(
            'UPDATE "%s" AS target SET (%s) = ROW(%s) FROM "bench_draft_%s" AS copy'
            " WHERE target.id = copy.id"
            % (
                table,
                ", ".join('"%s"' % name for name in columns),
                ", ".join('copy."%s"' % name for name in columns),
                table,
            )
        )
    for table, mark in marks.items():
        cr.execute('DELETE FROM "%s" WHERE id > %%s' % table, [mark])


def vacuum(database):
    # Outside any transaction, so from psql: the dead rows of a round must not slow the next one.
    subprocess.run(["psql", "-X", "-q", "-d", database, "-c", "VACUUM"], check=True)


def configure_company(registry, url, enabled=True):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env.company.write(
            {
                "metrika_enabled": enabled,
                "metrika_counter_id": "12345",
                "metrika_token": TOKEN,
                "metrika_api_url": url,
            }
        )
        assert env.company._metrika_is_configured() == enabled


def backend_cpu_seconds(cr):
    """CPU time used so far by the PostgreSQL backend serving ``cr`` (a local server)."""
    cr.execute("SELECT pg_backend_pid()")
    pid = cr.fetchone()[0]
    try:
        with open("/proc/%d/stat" % pid) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # not on Linux, or not the same machine
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def patch_methods(model, wrappers):
    """Replace methods of the registry class ``model`` by ``wrappers[name](original)``; return a
    function that puts the originals back. A name the model lacks is an error: a renamed method
    must not silently go unmeasured."""
    own = {}
    for name, wrap in wrappers.items():
        original = getattr(model, name)  # AttributeError when the method is gone
        own[name] = model.__dict__.get(name)
        setattr(model, name, wrap(original))

    def restore():
        for name, method in own.items():
            if method is None:
                delattr(model, name)  # the method of the class it came from again
            else:
                setattr(model, name, method)

    return restore


def measured(spent):
    """A wrapper factory for :func:`patch_methods`: adds each call's time, statements (counted
    on the caller's cursor) and the call itself to ``spent``."""

    def wrap(original):
        def method(self, *args, **kwargs):
            start, statements = time.perf_counter(), self.env.cr.sql_log_count
            try:
                return original(self, *args, **kwargs)
            finally:
                spent["seconds"] += time.perf_counter() - start
                spent["statements"] += self.env.cr.sql_log_count - statements
                spent["calls"] += 1

        return method

    return wrap


def new_spent():
    return {"seconds": 0.0, "statements": 0, "calls": 0}


def count_conversions(cr, order_ids):
    """Rows of ``metrika_conversion`` for ``order_ids``: (rows, distinct orders, {state: rows})."""
    cr.execute(
        "SELECT state, COUNT(*) FROM metrika_conversion WHERE sale_order_id = ANY(%s)"
        " GROUP BY state",
        [list(order_ids)],
    )
    states = dict(cr.fetchall())
    cr.execute(
        "SELECT COUNT(DISTINCT sale_order_id) FROM metrika_conversion"
        " WHERE sale_order_id = ANY(%s)",
        [list(order_ids)],
    )
    return sum(states.values()), cr.fetchone()[0], states


def check_conversions(cr, order_ids, expected, before=0):
    """The addon queued exactly ``expected`` rows, one per order, for ``order_ids``; return
    (rows, states). ``before``: the rows these orders had already."""
    rows, orders, states = count_conversions(cr, order_ids)
    assert rows - before == expected and (expected == 0 or orders == expected), (
        "the addon queued %d conversion rows for %d of the orders, expected %d rows, one per "
        "order (%s)" % (rows - before, orders, expected, states)
    )
    return rows - before, states


class ConfirmSession:
    """One database's share of a round: a cursor that confirms its drafts chunk by chunk (in one
    transaction, or one per order with ``per_order="commit"``)."""

    def __init__(
        self,
        registry,
        order_ids,
        expect_conversions=None,
        diagnose=False,
        per_order=None,
        marks=None,
    ):
        from odoo import api

        self.order_ids = order_ids
        self.per_order = per_order
        self.marks = marks
        self.expect_conversions = expect_conversions
        self.cr = registry.cursor()
        self.env = api.Environment(self.cr, ADMIN_UID, {})
        self.wall = self.cpu = 0.0
        self.statements = 0
        self.extra = {}
        self.restores = []
        if expect_conversions is not None:
            self.before = count_conversions(self.cr, order_ids)[0]
            # The cron trigger, a few statements once per time slot and process: counted in
            # every round (a wrapper around one call per transaction), to be printed apart.
            self.extra["trigger"] = self._instrument(TRIGGER_METHOD)
        if diagnose:
            # Time and statements spent in the addon's queueing (the call made by each
            # confirmation): what the added cost is made of.
            self.extra["enqueue"] = self._instrument(ENQUEUE_METHOD)
        self.backend_cpu = backend_cpu_seconds(self.cr)

    def _instrument(self, name):
        spent = new_spent()
        self.restores.append(
            patch_methods(type(self.env[CONVERSION_MODEL]), {name: measured(spent)})
        )
        return spent

    def _restore(self):
        while self.restores:
            self.restores.pop()()

    def _timed(self, work):
        statements = self.cr.sql_log_count
        wall, cpu = time.perf_counter(), time.thread_time()
        work()
        self.cpu += time.thread_time() - cpu
        self.wall += time.perf_counter() - wall
        self.statements += self.cr.sql_log_count - statements

    def confirm(self, order_ids):
        orders = self.env["sale.order"]

        def work():
            for order_id in order_ids:
                if self.per_order == "commit":
                    orders.browse(order_id).action_confirm()
                    self.cr.commit()  # flush, precommit hooks, COMMIT, cache cleared, postcommit
                elif self.per_order == "savepoint":
                    # A flushing savepoint runs what a commit runs before COMMIT (the ORM
                    # flush and the precommit hooks, where the addon's cron trigger is),
                    # while the round can still be rolled back and repeated...
                    with self.cr.savepoint():
                        orders.browse(order_id).action_confirm()
                    # ... and what runs after a COMMIT (postcommit hooks).
                    self.cr.postcommit.run()
                else:
                    orders.browse(order_id).action_confirm()

        self._timed(work)

    def finish(self):
        """Flush (timed), check what happened, undo it; return the figures."""
        cr = self.cr
        try:
            # What a commit runs before COMMIT: the ORM flush (the orders' UPDATE) and the
            # precommit hooks.
            self._timed(self.cr.flush)
            backend_cpu = backend_cpu_seconds(cr)
            if self.backend_cpu is not None and backend_cpu is not None:
                self.extra["backend_cpu"] = backend_cpu - self.backend_cpu
            cr.execute(
                "SELECT COUNT(*) FROM sale_order WHERE id = ANY(%s) AND state = 'sale'",
                [list(self.order_ids)],
            )
            confirmed = cr.fetchone()[0]
            assert confirmed == len(self.order_ids), "%d of %d orders confirmed" % (
                confirmed,
                len(self.order_ids),
            )
            if self.expect_conversions is not None:
                queued, states = check_conversions(
                    cr, self.order_ids, self.expect_conversions, self.before
                )
                self.extra.update(queued=queued, states=states)
            return self.wall, self.cpu, self.statements, self.extra
        finally:
            self._restore()
            self.undo()

    def undo(self):
        """Roll back, or after per-order commits restore the drafts; close the cursor."""
        cr = self.cr
        try:
            cr.rollback()
            if self.per_order == "commit":
                restore_drafts(cr, self.marks)
                cr.commit()
        finally:
            cr.close()


def confirm_round(registries, drafts, expect, chunk, diagnose=False, per_order=None, marks=None):
    """Confirm every draft of both databases once, alternating chunks of ``chunk`` orders.

    Interleaving at this grain means a burst of load from elsewhere on the machine slows both
    databases alike instead of one whole side of the comparison.
    """
    sessions = {
        label: ConfirmSession(
            registries[label],
            drafts[label],
            expect[label],
            diagnose=diagnose and expect[label] is not None,
            per_order=per_order,
            marks=marks and marks[label],
        )
        for label in registries
    }
    return run_round(sessions, drafts, chunk, vacuum_after=per_order == "commit")


def run_round(sessions, drafts, chunk, vacuum_after=False):
    """Let ``sessions`` (one per database, by label) confirm their drafts in turns of ``chunk``
    orders; return each one's figures (see :meth:`ConfirmSession.finish`)."""
    # A full garbage collection of two open transactions' caches takes long enough to skew the
    # round, and it lands on whichever side happens to run: none during the round (as timeit).
    gc.collect()
    gc.disable()
    # Read now: finish() closes each session's cursor.
    databases = [session.cr.dbname for session in sessions.values()]
    try:
        labels = list(sessions)
        count = len(next(iter(drafts.values())))
        for number, start in enumerate(range(0, count, chunk)):
            for label in labels if number % 2 == 0 else labels[::-1]:
                sessions[label].confirm(drafts[label][start : start + chunk])
        return {label: sessions.pop(label).finish() for label in labels}
    finally:
        gc.enable()
        for session in sessions.values():  # only after a failure
            session._restore()
            session.undo()
        if vacuum_after:
            for database in databases:
                vacuum(database)


def action_statements(registry, order_ids, log, label, expect_per_order=None):
    """Confirm ``order_ids`` in one action (``action_confirm()`` on the recordset) in a
    transaction of its own, run what a commit runs before COMMIT (the ORM flush and the
    precommit hooks), check the conversion rows and roll back.

    The statements are counted into ``log.counts[label]``, those of the cron trigger apart into
    ``log.counts[label + " trigger"]``.
    """
    from odoo import api

    cr = registry.cursor()
    restore = None
    try:
        env = api.Environment(cr, ADMIN_UID, {})
        if expect_per_order is not None:
            before = count_conversions(cr, order_ids)[0]

            def recorded(original):
                def method(self, *args, **kwargs):
                    with log.recording(self.env.cr.dbname, label + " trigger"):
                        return original(self, *args, **kwargs)

                return method

            restore = patch_methods(type(env[CONVERSION_MODEL]), {TRIGGER_METHOD: recorded})
        orders = env["sale.order"].browse(order_ids)
        with log.recording(cr.dbname, label):
            orders.action_confirm()
            cr.flush()
        assert set(orders.mapped("state")) == {"sale"}, orders.mapped("state")
        if expect_per_order is not None:
            check_conversions(cr, order_ids, expect_per_order * len(order_ids), before)
    finally:
        if restore:
            restore()
        cr.rollback()
        cr.close()


def measure_actions(registries, drafts, rows_per_order, sizes):
    """Statements of one action confirming K orders, for each K of ``sizes``, on each database:
    ``{K: {label: Counter of shapes}}``: ``"with"`` holds the addon side's statements but the cron
    trigger's, which are under ``"with trigger"``.
    ``rows_per_order``: the conversion rows each confirmed order must have queued, by label
    (None: not checked)."""
    log = StatementLog().install()
    results = {}
    for size in sizes:
        for measured_run in (False, True):  # the first run warms the caches up
            for label, registry in registries.items():
                key = "%s %d %s" % (label, size, "measured" if measured_run else "warm-up")
                action_statements(
                    registry,
                    drafts[label][:size],
                    log,
                    key,
                    rows_per_order[label],
                )
        results[size] = {
            label: log.counts["%s %d measured%s" % (side, size, trigger)]
            for label, side, trigger in (
                ("without", "without", ""),
                ("with", "with", ""),
                ("with trigger", "with", " trigger"),
            )
        }
    return results


def by_kind(counts):
    kinds = collections.Counter()
    for shape, count in counts.items():
        kinds[statement_kind(shape)] += count
    return kinds


def print_actions(actions):
    """Print the statements of each action size; return {K: added statements besides the
    trigger's}."""
    added = {}
    print(
        "statements in one action confirming K orders (action_confirm() on the recordset, ORM "
        "flush, precommit hooks; counted exactly, one fresh transaction each):"
    )
    for size, counts in actions.items():
        # The trigger's statements are counted under their own label only.
        without = sum(counts["without"].values())
        with_addon = sum(counts["with"].values())
        trigger = sum(counts["with trigger"].values())
        added[size] = with_addon - without
        print(
            "  K=%-3d without the addon %4d, with the addon %4d + %d of the cron trigger: "
            "added per action %+d besides the trigger's"
            % (size, without, with_addon, trigger, added[size])
        )
        kinds_with, kinds_without = by_kind(counts["with"]), by_kind(counts["without"])
        for kind in sorted(set(kinds_with) | set(kinds_without)):
            if kinds_with[kind] != kinds_without[kind]:
                print(
                    "      %+d %s (%d -> %d)"
                    % (
                        kinds_with[kind] - kinds_without[kind],
                        kind,
                        kinds_without[kind],
                        kinds_with[kind],
                    )
                )
        if counts["with trigger"]:
            print(
                "      the cron trigger's (once per 10-second slot and process): %s"
                % ", ".join(
                    "%d %s" % (count, kind)
                    for kind, count in sorted(by_kind(counts["with trigger"]).items())
                )
            )
    return added


def paired(results, index, orders):
    """Per round, with less without, per order; and the median without per order."""
    differences = [
        (w[index] - wo[index]) / orders
        for w, wo in zip(results["with"], results["without"], strict=True)
    ]
    base = statistics.median(run[index] for run in results["without"]) / orders
    return differences, base


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--orders", type=int, default=1000, help="orders confirmed per round (1000)"
    )
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (7)")
    per_order = parser.add_mutually_exclusive_group()
    per_order.add_argument(
        "--commit-each",
        dest="per_order",
        action="store_const",
        const="commit",
        help="commit after every order (one transaction per confirmation, as "
        "in the UI) instead of flushing once per round",
    )
    per_order.add_argument(
        "--savepoint-each",
        dest="per_order",
        action="store_const",
        const="savepoint",
        help="flush after every order in a savepoint, without COMMIT (the "
        "earlier approximation of --commit-each)",
    )
    parser.add_argument(
        "--sending-off",
        action="store_true",
        help="install the addon but leave sending disabled: what its mere "
        "presence costs (nothing is queued)",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=10,
        help="orders confirmed in one database before switching to the other (10)",
    )
    parser.add_argument(
        "--actions",
        default=",".join(map(str, ACTION_SIZES)),
        help="orders confirmed by the one action whose statements are counted, "
        "comma-separated sizes (%s)" % ",".join(map(str, ACTION_SIZES)),
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.actions.split(",")]
    if not sizes or min(sizes) < 1 or max(sizes) > args.orders:
        parser.error("--actions: sizes from 1 to --orders")
    print(machine_line(), flush=True)
    print(code_line(), flush=True)

    with Databases("confirm") as dbs, StandInProcess(TOKEN) as stand_in:
        started = time.perf_counter()
        base_db, addon_db = dbs.install({"base": "sale_crm", "addon": ADDON})
        print(
            "installed %s (sale_crm) and %s (%s) in %.0f s"
            % (base_db, addon_db, ADDON, time.perf_counter() - started),
            flush=True,
        )

        registries = {"without": open_registry(base_db), "with": open_registry(addon_db)}
        configure_company(registries["with"], stand_in.url, enabled=not args.sending_off)
        started = time.perf_counter()
        drafts = {
            "without": make_drafts(registries["without"], args.orders, with_client_ids=False),
            "with": make_drafts(registries["with"], args.orders, with_client_ids=True),
        }
        marks = None
        if args.per_order == "commit":
            marks = {
                label: snapshot_drafts(registries[label], drafts[label]) for label in registries
            }
        print(
            "created %d draft orders in each database in %.0f s"
            % (args.orders, time.perf_counter() - started),
            flush=True,
        )

        expect = {"without": None, "with": 0 if args.sending_off else args.orders}
        # Before any round: no transaction of this process has committed a cron trigger yet,
        # so the trigger's statements run (and are counted apart) in the first action measured.
        rows_per_order = {"without": None, "with": 0 if args.sending_off else 1}
        added_statements = print_actions(measure_actions(registries, drafts, rows_per_order, sizes))

        started = time.perf_counter()
        confirm_round(
            registries, drafts, expect, args.chunk, per_order=args.per_order, marks=marks
        )  # warm-up: caches, buffers
        print("warm-up round (untimed) in %.0f s" % (time.perf_counter() - started), flush=True)
        results = {"without": [], "with": []}
        trigger_statements_per_round = []
        for round_no in range(1, args.rounds + 1):
            figures = confirm_round(
                registries, drafts, expect, args.chunk, per_order=args.per_order, marks=marks
            )
            trigger_statements_per_round.append(figures["with"][3]["trigger"]["statements"])
            for label in ("without", "with"):
                wall, cpu, statements, extra = figures[label]
                results[label].append((wall, cpu + extra.get("backend_cpu", 0.0), statements))
                print(
                    "round %d %-7s addon: %6.3f s, %6.3f ms/order (CPU %6.3f ms/order), "
                    "%6.2f statements/order%s"
                    % (
                        round_no,
                        label,
                        wall,
                        1000 * wall / args.orders,
                        1000 * results[label][-1][1] / args.orders,
                        statements / args.orders,
                        ", queued %d conversion rows (undone)" % extra["queued"]
                        if "queued" in extra
                        else "",
                    ),
                    flush=True,
                )
        diag = confirm_round(
            registries,
            drafts,
            expect,
            args.chunk,
            diagnose=True,
            per_order=args.per_order,
            marks=marks,
        )["with"][3]
        received = stand_in.summary()

    def median(label, index):
        return statistics.median(run[index] for run in results[label]) / args.orders

    # Paired per round: both sides of a round ran interleaved, under the same load.
    time_differences, time_without = paired(results, 0, args.orders)
    cpu_differences, cpu_without = paired(results, 1, args.orders)
    added_time = statistics.median(time_differences)
    added_cpu = statistics.median(cpu_differences)
    statements_without = median("without", 2)
    # Each round's cron-trigger statements left out (they come once per slot, not per order).
    added_statements_per_order = (
        statistics.median(
            run[2] - trigger
            for run, trigger in zip(results["with"], trigger_statements_per_round, strict=True)
        )
        / args.orders
        - statements_without
    )
    enqueue = diag["enqueue"]
    print()
    print(
        "orders per round: %d, rounds: %d, databases alternating every %d orders, %s; "
        "medians:"
        % (
            args.orders,
            args.rounds,
            args.chunk,
            {
                "commit": "a COMMIT after every order",
                "savepoint": "a savepoint per order",
                None: "one transaction per round",
            }[args.per_order],
        )
    )
    for label, title in (("without", "without the addon:"), ("with", "with the addon:   ")):
        print(
            "%s %.3f ms/order (CPU %.3f), %.2f statements/order"
            % (title, 1000 * median(label, 0), 1000 * median(label, 1), median(label, 2))
        )
    print(
        "added statements per action besides the cron trigger's: %s (target at most %d)"
        % (
            ", ".join("K=%d: %+d" % (size, added) for size, added in added_statements.items()),
            MAX_ADDED_STATEMENTS_PER_ACTION,
        )
    )
    print(
        "added time per order (median of the rounds' paired differences): %+.3f ms (%+.2f%% of "
        "%.3f ms without the addon; rounds %s) (target at most %.1f ms)"
        % (
            1000 * added_time,
            100 * added_time / time_without,
            1000 * time_without,
            " ".join("%+.3f" % (1000 * d) for d in time_differences),
            MAX_ADDED_MS_PER_ORDER,
        )
    )
    print(
        "added CPU per order (the same way): %+.3f ms (%+.2f%% of %.3f ms; rounds %s)"
        % (
            1000 * added_cpu,
            100 * added_cpu / cpu_without,
            1000 * cpu_without,
            " ".join("%+.3f" % (1000 * d) for d in cpu_differences),
        )
    )
    print(
        "inside %s (extra instrumented round): %.3f ms/order, %.2f statements/order, %d calls"
        % (
            ENQUEUE_METHOD,
            1000 * enqueue["seconds"] / args.orders,
            enqueue["statements"] / args.orders,
            enqueue["calls"],
        )
    )
    print(
        "inside %s (the cron trigger), statements per timed round: %s; added statements per "
        "order in the rounds without them: %+.3f"
        % (
            TRIGGER_METHOD,
            " ".join(str(count) for count in trigger_statements_per_round),
            added_statements_per_order,
        )
    )
    print(
        "conversion rows queued per addon round: %d (states %s), undone"
        % (diag["queued"], diag["states"])
    )
    print("stand-in received %d requests" % received["requests"])

    failures = []
    if received["requests"]:
        failures.append(
            "confirming sent %d requests to Metrica (%s)"
            % (received["requests"], ", ".join(received["paths"]))
        )
    for size, added in added_statements.items():
        if added > MAX_ADDED_STATEMENTS_PER_ACTION:
            failures.append(
                "an action confirming %d orders runs %d added statements (more than %d)"
                % (size, added, MAX_ADDED_STATEMENTS_PER_ACTION)
            )
    if 1000 * added_time > MAX_ADDED_MS_PER_ORDER:
        failures.append(
            "added time %.3f ms per order is more than %.1f ms"
            % (1000 * added_time, MAX_ADDED_MS_PER_ORDER)
        )
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print(
        "OK (at most %d added statement per action besides the cron trigger's, at most %.1f ms "
        "added per order, nothing sent)" % (MAX_ADDED_STATEMENTS_PER_ACTION, MAX_ADDED_MS_PER_ORDER)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
