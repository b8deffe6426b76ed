#!/usr/bin/env python3
"""Draining a large queue of pending conversions to Metrica: throughput, memory, queries/batch.

One fresh database with the addon, its company configured to send to a Metrica stand-in that runs
in a child process (so that this process is Odoo's only and its CPU and memory are Odoo's). The
queue is made with SQL, as an ORM ``create`` of 100,000 orders would take far too long: customers
(name, e-mail, phone), confirmed sale orders (partner, company, currency, amounts, dates, a
ClientID on two orders in three) and one pending ``in_progress`` conversion per order
(``metrika_order_id = 'so-<id>'``, created and due in the past, inside Metrica's 21-day window,
numbered from the addon's ``metrika_conversion_queued_sequence`` in the order of confirmation as
the enqueue statement numbers them), then ANALYZE. The upload cron,
``metrika.conversion._cron_upload()``, is then called until it reports no work done, as Odoo's
scheduler calls it again while it reports some (the queue must be empty then); outside tests it
commits after every batch, as in production.

Measured: wall time of the whole drain (conversions per second), the process's peak resident
memory (``ru_maxrss``) and its increase over the baseline just before draining, and the SQL
queries of each batch's upload (``UploadRun._send``, wrapped for the run; the query that takes
and locks the batch is counted separately). The main queue (default 100,000) is drained with
batches of 1,000 (the largest the addon allows), then a second queue (default 20,000) with
batches of 250, to show that the queries per batch do not depend on the batch size. Each queue
has its own stand-in, which must have received every order id exactly once, every file passing
its validation; every conversion must end ``sent``.

Where the time goes is printed for each queue, per batch sent: the steps of a cron call
(``PHASES``: settling and polling, taking the batch, preparing the file, the upload's record and
file, the rows' state changes, the two commits, the HTTP request, ...) with their wall time, SQL
queries and time in SQL, and the costliest SQL statements by the step that ran them. The state
changes are one UPDATE of the batch each; what the ORM still has to write runs in the flush of
the commit that follows, which is timed apart from the COMMIT. When the queries per batch differ
between the two queues, the steps and statements that differ are printed.

    python3 benchmarks/bench_drain_queue.py [--orders N] [--batch-size B] [--second-orders N2]
                                            [--second-batch-size B2] [--profile]

Exits 1 when a check fails, when the main queue drains at fewer than 3,000 conversions per second
(issue 8's target; wall-clock, so on a quiet machine), when the peak memory reaches 300 MB, or
when the median queries per batch differ between the two batch sizes (or vary within one drain
beyond the first batch, which also reads the counter's time zone). ``--profile`` (automatic
below 1,000 conversions/s) runs one more batch under cProfile and prints where its time goes.
"""

import argparse
import cProfile
import gc
import importlib
import io
import pstats
import re
import resource
import statistics
import sys
import time

from odoo_bench import (
    ADDON,
    Databases,
    StandInProcess,
    code_line,
    machine_line,
    open_registry,
    rss_mb,
)

MAX_PEAK_MB = 300.0
# Issue 8's target for the main queue; below SLOW_RATE one batch is profiled as well.
MIN_RATE = 3000.0
SLOW_RATE = 1000.0
TOKEN = "bench-token"


def peak_mb():
    return rss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def configure_company(registry, url, batch_size):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        env.company.write(
            {
                "metrika_enabled": True,
                "metrika_counter_id": "12345",
                "metrika_token": TOKEN,
                "metrika_api_url": url,
                "metrika_batch_size": batch_size,
            }
        )
        assert env.company._metrika_is_configured()


def make_queue(registry, count, tag):
    """``count`` customers, confirmed orders and pending conversions, by SQL; commit and ANALYZE.

    Returns the order ids. ``tag`` keeps names and e-mails of several queues apart.
    """
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env.company
        params = {
            "count": count,
            "tag": tag,
            "company": company.id,
            "currency": company.currency_id.id,
            "uid": SUPERUSER_ID,
            "salesman": env.ref("base.user_admin").id,
        }
        # Customers: what the cron reads is e-mail, phone and mobile; the rest keeps the row
        # as the ORM would write it (commercial partner = itself, complete name, language…).
        cr.execute(
            """
            INSERT INTO res_partner (
                name, complete_name, email, email_normalized, phone, type, lang, active,
                is_company, employee, partner_share, customer_rank, supplier_rank, autopost_bills,
                create_uid, write_uid, create_date, write_date)
            SELECT 'Customer ' || %(tag)s || '-' || n, 'Customer ' || %(tag)s || '-' || n,
                   'Customer.' || %(tag)s || '.' || n || '@Example.com',
                   'customer.' || %(tag)s || '.' || n || '@example.com',
                   '+7 (9' || lpad((n %% 100)::text, 2, '0') || ') '
                       || lpad((n %% 1000)::text, 3, '0')
                       || '-' || lpad((n %% 97)::text, 2, '0')
                       || '-' || lpad((n %% 89)::text, 2, '0'),
                   'contact', 'en_US', TRUE, FALSE, FALSE, TRUE, 1, 0, 'ask',
                   %(uid)s, %(uid)s, now() at time zone 'UTC', now() at time zone 'UTC'
            FROM generate_series(1, %(count)s) AS n
            RETURNING id
        """,
            params,
        )
        partner_ids = [row[0] for row in cr.fetchall()]
        # One customer in four has a mobile too, where the series has the field (19.0 has not).
        if "mobile" in env["res.partner"]._fields:
            cr.execute(
                """
                UPDATE res_partner
                   SET mobile = '+79' || lpad(((n * 7919) %% 1000000000)::text, 9, '0')
                  FROM unnest(%s::int[]) WITH ORDINALITY AS p(id, n)
                 WHERE res_partner.id = p.id AND p.n %% 4 = 0
            """,
                [partner_ids],
            )
        cr.execute(
            "UPDATE res_partner SET commercial_partner_id = id WHERE id = ANY(%s)", [partner_ids]
        )
        # Confirmed orders, created over the last 20 days, worth 10.00 to 5,000.00.
        cr.execute(
            """
            INSERT INTO sale_order (
                name, state, partner_id, partner_invoice_id, partner_shipping_id, company_id,
                currency_id, currency_rate, user_id, invoice_status, date_order, validity_date,
                amount_untaxed, amount_tax, amount_total, locked, require_signature,
                require_payment, prepayment_percent, metrika_client_id,
                create_uid, write_uid, create_date, write_date)
            SELECT 'SB' || %(tag)s || '/' || lpad(p.n::text, 6, '0'), 'sale', p.id, p.id, p.id,
                   %(company)s, %(currency)s, 1.0, %(salesman)s, 'to invoice', p.created,
                   (p.created + interval '30 days')::date,
                   p.amount, 0, p.amount, FALSE, FALSE, FALSE, 1.0,
                   CASE WHEN p.n %% 3 <> 0
                        THEN (1700000000 + p.n)::text
                             || lpad(((p.n * 7919) %% 1000000000)::text, 9, '0')
                   END,
                   %(uid)s, %(uid)s, p.created, p.created + interval '1 hour'
            FROM (
                SELECT id, row_number() OVER (ORDER BY id) AS n,
                       (now() at time zone 'UTC') - interval '20 days'
                           + (random() * interval '19 days 23 hours') AS created,
                       round((10 + random() * 4990)::numeric, 2) AS amount
                FROM res_partner WHERE id = ANY(%(partners)s)
            ) p
            ORDER BY p.n
            RETURNING id
        """,
            dict(params, partners=partner_ids),
        )
        order_ids = [row[0] for row in cr.fetchall()]
        # The queue, as _metrika_enqueue writes it when an order is confirmed: in the order
        # of confirmation, so the ids and the queue order (queued_sequence, from the addon's
        # sequence as the enqueue statement takes it) follow the due times as in a real queue.
        # (PostgreSQL evaluates a volatile nextval() of the select list after the ORDER BY.)
        cr.execute(
            """
            INSERT INTO metrika_conversion (
                company_id, sale_order_id, record_name, event, order_status, metrika_order_id,
                order_create_date, event_date, revenue, currency_id, transport, state,
                attempt_count, next_attempt_at, queued_sequence,
                create_uid, write_uid, create_date, write_date)
            SELECT so.company_id, so.id, so.name, 'in_progress', 'IN_PROGRESS', 'so-' || so.id,
                   so.create_date, so.write_date, so.amount_total, so.currency_id,
                   'simple_orders', 'pending', 0, so.write_date,
                   nextval('metrika_conversion_queued_sequence'),
                   %(uid)s, %(uid)s, so.write_date, so.write_date
            FROM sale_order so WHERE so.id = ANY(%(orders)s)
            ORDER BY so.write_date, so.id
            RETURNING id, queued_sequence
        """,
            dict(params, orders=order_ids),
        )
        numbered = sorted(cr.fetchall())
        assert len(numbered) == count, len(numbered)
        # Every row numbered, in the order of the ids (the order of confirmation).
        sequence = [queued for _id, queued in numbered]
        assert None not in sequence and sequence == sorted(set(sequence)), "queued_sequence"
        cr.commit()
        cr.execute("ANALYZE res_partner, sale_order, metrika_conversion")
        cr.commit()
    return order_ids


class BatchMeter:
    """Wraps the upload of one batch (``UploadRun._send``) and the batch lock for a run."""

    def __init__(self, registry):
        from odoo.addons.metrika_offline_conversions.tools.upload_run import UploadRun

        self.run_class = UploadRun
        self.model = registry["metrika.conversion"]
        self.send = UploadRun._send
        self.lock = self.model._metrika_lock_due_batch
        self.saved_lock = self.model.__dict__.get("_metrika_lock_due_batch")
        self.batches = []  # (rows, queries, seconds)
        self.locks = []  # (rows, queries, seconds)

    def __enter__(self):
        meter, send, lock = self, self.send, self.lock

        def measured_send(run, company, method, batch):
            cr, queries, started = run.env.cr, run.env.cr.sql_log_count, time.perf_counter()
            try:
                return send(run, company, method, batch)
            finally:
                meter.batches.append(
                    (len(batch), cr.sql_log_count - queries, time.perf_counter() - started)
                )

        # Signature-agnostic: only the recordset and the counters matter here.
        def measured_lock(self, *args, **kwargs):
            cr, queries, started = self.env.cr, self.env.cr.sql_log_count, time.perf_counter()
            batch = lock(self, *args, **kwargs)
            meter.locks.append(
                (len(batch), cr.sql_log_count - queries, time.perf_counter() - started)
            )
            return batch

        self.run_class._send = measured_send
        self.model._metrika_lock_due_batch = measured_lock
        return self

    def __exit__(self, *exc_info):
        self.run_class._send = self.send
        if self.saved_lock is None:
            delattr(self.model, "_metrika_lock_due_batch")  # back to the inherited definition
        else:
            self.model._metrika_lock_due_batch = self.saved_lock


# The steps of a cron call timed apart by PhaseMeter: (phase, parent phase, where, attribute).
# ``where``: "run" UploadRun, "sender" the simple_orders sender, "conversion" and "upload" the
# models, "upload_run" the module (its commit(), twice per batch: see PhaseMeter.commit).
PHASES = (
    ("cron call", None, "conversion", "_cron_upload"),
    ("settle open uploads", "cron call", "run", "_settle_open_uploads"),
    ("poll uploads", "cron call", "run", "_poll_uploads"),
    ("due groups", "cron call", "conversion", "_metrika_due_groups"),
    ("lock the batch", "cron call", "conversion", "_metrika_lock_due_batch"),
    ("send the batch", "cron call", "run", "_send"),
    ("prepare", "send the batch", "run", "_prepare"),
    ("orders' latest rows", "prepare", "sender", "_orders_state"),
    ("build the file", "prepare", "sender", "_build_file"),
    ("new upload", "send the batch", "run", "_new_upload"),
    ("attach the file", "send the batch", "upload", "_metrika_attach_file"),
    ("mark sending (one UPDATE)", "send the batch", "conversion", "_metrika_mark_sending"),
    ("commit 1: ORM flush", "send the batch", None, None),
    ("commit 1: COMMIT", "send the batch", None, None),
    ("hold the upload", "send the batch", "run", "_hold"),
    ("HTTP request", "send the batch", "sender", "send"),
    ("record the success", "send the batch", "sender", "record_success"),
    ("mark sent (one UPDATE)", "record the success", "conversion", "_metrika_mark_sent"),
    ("commit 2: ORM flush", "send the batch", None, None),
    ("commit 2: COMMIT", "send the batch", None, None),
    ("due count", "cron call", "conversion", "_metrika_due_count"),
    ("schedule next", "cron call", "conversion", "_metrika_schedule_next"),
    ("other commits (settle, poll)", "cron call", None, None),
)
OUTSIDE = "(outside the cron call)"
SAVEPOINT_NAME = re.compile(r'SAVEPOINT "[^"]*"')


class PhaseMeter:
    """Wall time, SQL queries and SQL time of each step of the drain (``PHASES``), inclusive of
    the steps inside it, and which SQL statements each step ran.

    The ORM's writes are put in its cache and only reach the database at the next flush: the
    time of a ``write()`` step is its work in Python, the UPDATEs it causes are in the ORM flush
    of the commit that follows (timed apart from the COMMIT and its hooks). SQL time is the time
    spent in ``cursor.execute`` (timed by a wrapper: Odoo's query hooks are called after the
    statement with its time on 18.0, before it on 19.0); the rest of a step is Python (or, for
    the HTTP request, waiting for the stand-in).
    """

    def __init__(self, registry):
        from odoo.addons.metrika_offline_conversions.tools import upload_run
        from odoo.addons.metrika_offline_conversions.tools.senders import SENDERS

        self.owners = {
            "run": upload_run.UploadRun,
            "sender": SENDERS["simple_orders"],
            "conversion": registry["metrika.conversion"],
            "upload": registry["metrika.upload"],
            "upload_run": upload_run,
        }
        self.totals = {name: [0, 0, 0.0, 0.0] for name, *_x in PHASES}  # calls, queries, s, SQL s
        self.totals[OUTSIDE] = [0, 0, 0.0, 0.0]
        self.statements = {}  # (phase, statement) -> [count, seconds]
        self.stack = []
        self.queries = 0
        self.sql_seconds = 0.0
        self.commits = 0  # of the batch being sent
        self.saved = []

    def _step(self, name, started, queries, sql_seconds):
        total = self.totals[name]
        total[0] += 1
        total[1] += self.queries - queries
        total[2] += time.perf_counter() - started
        total[3] += self.sql_seconds - sql_seconds

    def timed(self, name, function):
        meter = self

        def step(*args, **kwargs):
            started, queries, sql_seconds = time.perf_counter(), meter.queries, meter.sql_seconds
            meter.stack.append(name)
            if name == "send the batch":
                meter.commits = 0
            try:
                return function(*args, **kwargs)
            finally:
                meter.stack.pop()
                meter._step(name, started, queries, sql_seconds)

        return step

    def commit(self, original):
        """upload_run.commit: the ORM flush, then the COMMIT (precommit hooks, COMMIT,
        postcommit), each timed apart; the first and second of a batch are told apart."""
        meter = self

        def commit(env):
            if "send the batch" not in meter.stack:
                steps = [("other commits (settle, poll)", lambda: original(env))]
            else:
                meter.commits += 1
                label = "commit %d" % min(meter.commits, 2)
                steps = [
                    ("%s: ORM flush" % label, env.flush_all),
                    ("%s: COMMIT" % label, lambda: original(env)),
                ]
            for name, action in steps:
                started, queries, sql_seconds = (
                    time.perf_counter(),
                    meter.queries,
                    meter.sql_seconds,
                )
                meter.stack.append(name)
                try:
                    action()
                finally:
                    meter.stack.pop()
                    meter._step(name, started, queries, sql_seconds)

        return commit

    def record_statement(self, query, delay):
        self.queries += 1
        self.sql_seconds += delay
        if isinstance(query, self.sql_class):
            query = query.code
        if isinstance(query, bytes):
            query = query.decode("utf-8", "replace")
        # One name for every savepoint (Odoo names each with a new UUID).
        text = SAVEPOINT_NAME.sub('SAVEPOINT "…"', " ".join(str(query).split()))
        if len(text) > 150:
            text = text[:147] + "..."
        key = (self.stack[-1] if self.stack else OUTSIDE, text)
        seen = self.statements.setdefault(key, [0, 0.0])
        seen[0] += 1
        seen[1] += delay

    def __enter__(self):
        import odoo.sql_db
        import odoo.tools

        self.sql_class = odoo.tools.SQL
        for name, _parent, where, attribute in PHASES:
            if where is None:
                continue
            owner = self.owners[where]
            self.saved.append((owner, attribute, owner.__dict__.get(attribute)))
            setattr(owner, attribute, self.timed(name, getattr(owner, attribute)))
        module = self.owners["upload_run"]
        self.saved.append((module, "commit", module.commit))
        module.commit = self.commit(module.commit)
        original_execute = odoo.sql_db.Cursor.execute
        meter = self

        def execute(cursor, query, params=None, log_exceptions=True):
            started = time.perf_counter()
            try:
                return original_execute(cursor, query, params, log_exceptions)
            finally:
                meter.record_statement(query, time.perf_counter() - started)

        self.saved.append((odoo.sql_db.Cursor, "execute", odoo.sql_db.Cursor.__dict__["execute"]))
        odoo.sql_db.Cursor.execute = execute
        return self

    def __exit__(self, *exc_info):
        for owner, attribute, saved in reversed(self.saved):
            if saved is None:
                delattr(owner, attribute)  # back to the inherited definition
            else:
                setattr(owner, attribute, saved)
        self.saved = []

    def report(self, batches, drain_seconds):
        """Per batch sent: each step's ms, queries, SQL ms; then the costliest statements."""
        outside = self.totals[OUTSIDE]
        outside[0] = self.totals["cron call"][0]
        outside[2] = drain_seconds - self.totals["cron call"][2]
        outside[1] = sum(n for (phase, _t), (n, _s) in self.statements.items() if phase == OUTSIDE)
        outside[3] = sum(s for (phase, _t), (_n, s) in self.statements.items() if phase == OUTSIDE)
        children = {}
        for name, parent, *_x in PHASES:
            children.setdefault(parent, []).append(name)
        print(
            "  where the time goes, per batch sent (%d batches; inclusive of the steps below "
            "each; '(rest)' is a step's own work outside the steps listed):" % batches
        )
        print(
            "    %-34s %7s %9s %9s %9s %9s %6s"
            % ("step", "calls", "ms", "queries", "SQL ms", "other ms", "share")
        )

        def line(label, total, depth):
            calls, queries, seconds, sql = total
            print(
                "    %-34s %7.2f %9.2f %9.2f %9.2f %9.2f %5.1f%%"
                % (
                    "  " * depth + label,
                    calls / batches,
                    1000 * seconds / batches,
                    queries / batches,
                    1000 * sql / batches,
                    1000 * (seconds - sql) / batches,
                    100 * seconds / drain_seconds,
                )
            )

        def walk(name, depth):
            total = self.totals[name]
            line(name, total, depth)
            kids = children.get(name, [])
            if kids:
                rest = [
                    total[index] - sum(self.totals[kid][index] for kid in kids)
                    for index in range(4)
                ]
                rest[0] = total[0]
                for kid in kids:
                    walk(kid, depth + 1)
                line("(rest)", rest, depth + 1)

        for name in children[None]:
            walk(name, 0)
        line(OUTSIDE, outside, 0)
        print("  costliest SQL statements (per batch sent: count, ms; by the step that ran them):")
        ranked = sorted(self.statements.items(), key=lambda item: -item[1][1])
        for (phase, text), (count, seconds) in ranked[:14]:
            print(
                "    %6.2f x %7.2f ms  [%s] %s"
                % (count / batches, 1000 * seconds / batches, phase, text)
            )


def count_states(registry, order_ids):
    with registry.cursor() as cr:
        cr.execute(
            "SELECT state, COUNT(*) FROM metrika_conversion "
            "WHERE sale_order_id = ANY(%s) GROUP BY state",
            [order_ids],
        )
        return dict(cr.fetchall())


def drain(registry, order_ids):
    """Call the cron until nothing is pending; return the figures of the run."""
    from odoo import SUPERUSER_ID, api

    gc.collect()
    baseline = peak_mb()
    calls = 0
    with BatchMeter(registry) as meter, PhaseMeter(registry) as phases:
        started = time.perf_counter()
        done = True
        # As Odoo's scheduler does, the cron is called again while it reports work done; the
        # queue is counted once it says there is none left (not timed: the scheduler does not).
        while done:
            with registry.cursor() as cr:  # the cron commits per batch itself
                env = api.Environment(cr, SUPERUSER_ID, {})
                done = env["metrika.conversion"]._cron_upload()
                calls += 1
        seconds = time.perf_counter() - started
    with registry.cursor() as cr:
        cr.execute("SELECT COUNT(*) FROM metrika_conversion WHERE state = 'pending'")
        pending = cr.fetchone()[0]
    if pending:
        raise RuntimeError("the cron made no progress; %d conversions still pending" % pending)
    return {
        "seconds": seconds,
        "calls": calls,
        "baseline_mb": baseline,
        "peak_mb": peak_mb(),
        "batches": meter.batches,
        "locks": meter.locks,
        "phases": phases,
        "states": count_states(registry, order_ids),
    }


def report(label, count, batch_size, run, received):
    sizes = [rows for rows, _q, _s in run["batches"]]
    queries = [q for _r, q, _s in run["batches"]]
    steady = queries[1:] or queries
    seconds = [s for _r, _q, s in run["batches"]]
    locks = [lock for lock in run["locks"] if lock[0]]  # the empty ones end a cron call
    print("%s: %d conversions, batch size %d" % (label, count, batch_size))
    print(
        "  drained in %.1f s: %.0f conversions/s (%d cron calls, %d batches of %d..%d rows)"
        % (run["seconds"], count / run["seconds"], run["calls"], len(sizes), min(sizes), max(sizes))
    )
    print(
        "  queries per batch upload: min %d, max %d, median %g (first batch %d, "
        "later batches %d..%d)"
        % (
            min(queries),
            max(queries),
            statistics.median(queries),
            queries[0],
            min(steady),
            max(steady),
        )
    )
    print(
        "  seconds per batch: median %.3f, max %.3f; taking the batch (lock): %d queries, "
        "median %.1f ms, "
        "first %.1f ms, last %.1f ms"
        % (
            statistics.median(seconds),
            max(seconds),
            max(q for _r, q, _s in locks),
            1000 * statistics.median(s for _r, _q, s in locks),
            1000 * locks[0][2],
            1000 * locks[-1][2],
        )
    )
    print(
        "  memory: peak RSS %.1f MB (baseline before draining %.1f MB, +%.1f MB)"
        % (run["peak_mb"], run["baseline_mb"], run["peak_mb"] - run["baseline_mb"])
    )
    print(
        "  conversion states: %s; stand-in: %d simple_orders uploads, %d rows, %d distinct order "
        "ids, %d failed validation, requests %s"
        % (
            run["states"],
            received["simple_order_uploads"],
            received["simple_order_rows"],
            received["distinct_order_ids"],
            received["validation_failed"],
            ", ".join(received["paths"]),
        )
    )
    run["phases"].report(len(sizes), run["seconds"])
    failures = []
    if run["states"] != {"sent": count}:
        failures.append("%s: conversions end %s, not all %d sent" % (label, run["states"], count))
    if received["distinct_order_ids"] != count or received["simple_order_rows"] != count:
        failures.append(
            "%s: the stand-in received %d rows, %d distinct order ids, expected %d"
            % (label, received["simple_order_rows"], received["distinct_order_ids"], count)
        )
    if received["validation_failed"]:
        failures.append("%s: %d uploads failed validation" % (label, received["validation_failed"]))
    if max(steady) != min(steady):
        failures.append(
            "%s: queries per batch vary from %d to %d after the first batch"
            % (label, min(steady), max(steady))
        )
    return failures


def compare_queries(runs):
    """The steps and SQL statements whose queries per batch differ between the two queues by
    half a query or more (a query of the first batch only is spread over all of them)."""
    (_la, _ca, size_a, run_a), (_lb, _cb, size_b, run_b) = runs
    batches_a, batches_b = len(run_a["batches"]), len(run_b["batches"])
    print(
        "  steps whose queries per batch differ by 0.5 or more (batch %d vs batch %d):"
        % (size_a, size_b)
    )
    for name, *_x in PHASES:
        per_a = run_a["phases"].totals[name][1] / batches_a
        per_b = run_b["phases"].totals[name][1] / batches_b
        if abs(per_a - per_b) >= 0.5:
            print("    %-34s %7.2f vs %7.2f" % (name, per_a, per_b))
    print("  SQL statements whose count per batch differs by 0.5 or more:")
    counts_a, counts_b = run_a["phases"].statements, run_b["phases"].statements
    for key in sorted(set(counts_a) | set(counts_b)):
        per_a = counts_a.get(key, [0])[0] / batches_a
        per_b = counts_b.get(key, [0])[0] / batches_b
        if abs(per_a - per_b) >= 0.5:
            print("    %7.2f vs %7.2f  [%s] %s" % (per_a, per_b, key[0], key[1][:100]))


def profile_one_batch(registry, batch_size, tag):
    """One more batch (``batch_size`` new conversions) drained under cProfile; prints the top."""
    from odoo import SUPERUSER_ID, api

    make_queue(registry, batch_size, tag)
    profiler = cProfile.Profile()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        started = time.perf_counter()
        profiler.enable()
        done = env["metrika.conversion"]._cron_upload()
        profiler.disable()
        seconds = time.perf_counter() - started
    print("profile of one batch of %d conversions (%.2f s under cProfile):" % (done, seconds))
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(30)
        text = out.getvalue()
        print("  sorted by %s:" % key)
        print("\n".join("    " + line for line in text[text.index("ncalls") :].splitlines()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000, help="main queue (100000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="its batch size (1000)")
    parser.add_argument("--second-orders", type=int, default=20_000, help="second queue (20000)")
    parser.add_argument("--second-batch-size", type=int, default=250, help="its batch size (250)")
    parser.add_argument("--profile", action="store_true", help="profile one batch in any case")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)

    failures = []
    with Databases("drain") as dbs:
        started = time.perf_counter()
        (database,) = dbs.install({"addon": ADDON})
        print(
            "installed %s (%s) in %.0f s" % (database, ADDON, time.perf_counter() - started),
            flush=True,
        )
        registry = open_registry(database)
        runs = []
        for label, count, batch_size, tag in (
            ("main queue", args.orders, args.batch_size, "a"),
            ("second queue", args.second_orders, args.second_batch_size, "b"),
        ):
            if count <= 0:
                continue
            started = time.perf_counter()
            order_ids = make_queue(registry, count, tag)
            print(
                "%s: made %d customers, orders and pending conversions by SQL in %.1f s"
                % (label, count, time.perf_counter() - started),
                flush=True,
            )
            with StandInProcess(TOKEN) as stand_in:
                configure_company(registry, stand_in.url, batch_size)
                run = drain(registry, order_ids)
                received = stand_in.summary()
            failures += report(label, count, batch_size, run, received)
            runs.append((label, count, batch_size, run))
            sys.stdout.flush()

        main_rate = args.orders / runs[0][3]["seconds"] if args.orders > 0 else None
        if args.profile or (main_rate is not None and main_rate < SLOW_RATE):
            with StandInProcess(TOKEN) as stand_in:
                configure_company(registry, stand_in.url, args.batch_size)
                profile_one_batch(registry, args.batch_size, "p")

    print()
    peak = max(run["peak_mb"] for *_x, run in runs)
    for label, count, batch_size, run in runs:
        queries = [q for _r, q, _s in run["batches"]]
        print(
            "%-12s %6d conversions, batch %4d: %7.0f conversions/s, queries/batch min %d max %d "
            "median %g, peak RSS %.1f MB (+%.1f MB)"
            % (
                label,
                count,
                batch_size,
                count / run["seconds"],
                min(queries),
                max(queries),
                statistics.median(queries),
                run["peak_mb"],
                run["peak_mb"] - run["baseline_mb"],
            )
        )
    if len(runs) == 2:
        import odoo.models
        import odoo.sql_db

        # odoo.models on 18.0, odoo.orm.models (which 19.0's odoo.models re-exports in part) since.
        update_batch_size = getattr(odoo.models, "UPDATE_BATCH_SIZE", None) or (
            importlib.import_module("odoo.orm.models").UPDATE_BATCH_SIZE
        )

        medians = [statistics.median(q for _r, q, _s in run["batches"]) for *_x, run in runs]
        if medians[0] != medians[1]:
            failures.append(
                "median queries per batch differ with the batch size: %g (batch %d) vs "
                "%g (batch %d)" % (medians[0], runs[0][2], medians[1], runs[1][2])
            )
            # A step of a few queries per 1,000 rows is the ORM reading 1,000 ids per query
            # (cr.IN_MAX), or flushing 100 rows per UPDATE (models.UPDATE_BATCH_SIZE); a
            # difference proportional to the rows would be a query per row.
            print(
                "note: queries per row %.4f (batch %d) vs %.4f (batch %d); Odoo's ORM fetches at "
                "most %d ids per query and flushes at most %d rows per UPDATE"
                % (
                    medians[0] / runs[0][2],
                    runs[0][2],
                    medians[1] / runs[1][2],
                    runs[1][2],
                    odoo.sql_db.Cursor.IN_MAX,
                    update_batch_size,
                )
            )
            compare_queries(runs)
    if peak >= MAX_PEAK_MB:
        failures.append("peak memory %.1f MB is not below %.0f MB" % (peak, MAX_PEAK_MB))
    if main_rate is not None and main_rate < MIN_RATE:
        failures.append(
            "main queue drained at %.0f conversions/s, below %.0f/s" % (main_rate, MIN_RATE)
        )
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print(
        "OK (all sent, every order id received once, at least %.0f conversions/s, peak < %.0f MB, "
        "queries per batch constant)" % (MIN_RATE, MAX_PEAK_MB)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
