#!/usr/bin/env python3
"""Opening the Metrica dashboard on a large sync log: the server time of what the client asks.

One fresh database with the addon, filled with SQL (an ORM ``create`` of a million rows would
take hours): 50,000 uploads (three in ten goal-based, with Metrica's counts: rows received,
accepted, linked) and 1,000,000 conversions, twenty per upload, queued over the last 400 days
(the default sync log retention) in every state and with every result the upload path writes;
100,000 of them are the "paid" rows of as many sale orders. Beside them, for the coverage
report: 10,000 customers, 200,000 confirmed orders (ClientIDs, yclids, phones and e-mails in
different shares) and 50,000 won leads over the same 400 days. Then ANALYZE.

The figures are then brought up to date as the cron does it every 10 minutes (its time is
printed: it runs in the background, not when somebody opens the dashboard). Measured: the
server calls the web client makes to open each view of the two dashboard actions
with their default filter (the last 12 weeks), as each series' client makes them (18.0: graph
``web_read_group``, pivot one ``read_group`` per grouping; 19.0: ``formatted_read_group`` and
``formatted_read_grouping_sets``), after ``get_views``; each opening is timed three times
(wall time of the calls in this process, SQL included) and its median counts. The same is
printed, for information, with no filter at all (the whole log).

    python3 benchmarks/bench_dashboard.py [--conversions N] [--uploads N]

Exits 1 when opening a view of the dashboard (the action's default view, or its pivot or graph)
with its default filter takes more than 1 s of server time, or when the figures read do not add
up to the rows made.
"""

import argparse
import statistics
import sys
import time

from odoo_bench import Databases, code_line, machine_line, open_registry

TARGET_SECONDS = 1.0
REPEAT = 3
DAYS = 400


def fill(registry, conversions, uploads, orders, leads, customers):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        company = env.company
        company.metrika_counter_id = "12345"
        params = {
            "company": company.id,
            "currency": company.currency_id.id,
            "uid": SUPERUSER_ID,
            "days": DAYS,
            "uploads": uploads,
            "conversions": conversions,
            "per_upload": max(conversions // uploads, 1),
            "orders": orders,
            "leads": leads,
            "customers": customers,
            "won_stage": env["crm.stage"].search([("is_won", "=", True)], limit=1).id,
        }
        cr.execute(
            """
            INSERT INTO metrika_upload (
                company_id, transport, state, row_count, source_quantity, line_quantity,
                linked_quantity, refused_quantity, create_uid, write_uid, create_date, write_date)
            SELECT %(company)s,
                   CASE WHEN n %% 10 < 3 THEN 'offline_conversions' ELSE 'simple_orders' END,
                   CASE WHEN n %% 10 < 2 THEN 'processed'
                        WHEN n %% 10 < 3 THEN 'not_linked' ELSE 'accepted' END,
                   %(per_upload)s,
                   CASE WHEN n %% 10 < 3 THEN %(per_upload)s END,
                   CASE WHEN n %% 10 < 3 THEN %(per_upload)s - n %% 2 END,
                   CASE WHEN n %% 10 < 2 THEN %(per_upload)s / 2 WHEN n %% 10 < 3 THEN 0 END,
                   CASE WHEN n %% 10 < 3 THEN n %% 2 ELSE 0 END,
                   %(uid)s, %(uid)s, t, t
              FROM (SELECT n, (now() AT TIME ZONE 'UTC')
                              - (%(uploads)s - n) * (%(days)s * INTERVAL '1 day') / %(uploads)s AS t
                      FROM generate_series(1, %(uploads)s) AS n) AS u
            ORDER BY n
            """,
            params,
        )
        cr.execute("SELECT min(id) FROM metrika_upload")
        params["first_upload"] = cr.fetchone()[0]
        cr.execute(
            """
            INSERT INTO res_partner (
                name, complete_name, email, phone, type, active, is_company, partner_share,
                autopost_bills, create_uid, write_uid, create_date, write_date)
            SELECT 'Customer ' || n, 'Customer ' || n,
                   CASE WHEN n %% 5 < 3 THEN 'customer' || n || '@example.com' END,
                   CASE WHEN n %% 2 = 0 THEN '+7 999 ' || lpad(n::text, 7, '0') END,
                   'contact', TRUE, FALSE, TRUE, 'ask',
                   %(uid)s, %(uid)s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
              FROM generate_series(1, %(customers)s) AS n
            """,
            params,
        )
        cr.execute(
            "SELECT min(id) FROM res_partner WHERE name LIKE 'Customer %%' AND NOT is_company"
        )
        params["first_customer"] = cr.fetchone()[0]
        cr.execute(
            """
            INSERT INTO sale_order (
                name, state, partner_id, partner_invoice_id, partner_shipping_id, company_id,
                currency_id, date_order, amount_total, metrika_client_id, metrika_yclid,
                create_uid, write_uid, create_date, write_date)
            SELECT 'SB' || lpad(n::text, 7, '0'), 'sale', p, p, p, %(company)s, %(currency)s, t,
                   100, CASE WHEN n %% 3 <> 0 THEN (1700000000000000000 + n)::text END,
                   CASE WHEN n %% 7 = 0 THEN (6754821930114400000 + n)::text END,
                   %(uid)s, %(uid)s, t, t
              FROM (SELECT n, %(first_customer)s + n %% %(customers)s AS p,
                           (now() AT TIME ZONE 'UTC')
                           - (%(orders)s - n) * (%(days)s * INTERVAL '1 day') / %(orders)s AS t
                      FROM generate_series(1, %(orders)s) AS n) AS o
            ORDER BY n
            """,
            params,
        )
        cr.execute("SELECT min(id) FROM sale_order WHERE name LIKE 'SB%%'")
        params["first_order"] = cr.fetchone()[0]
        cr.execute(
            """
            INSERT INTO crm_lead (
                name, type, active, stage_id, company_id, email_from, phone, metrika_client_id,
                date_closed, create_uid, write_uid, create_date, write_date)
            SELECT 'Lead ' || n, 'opportunity', TRUE, %(won_stage)s, %(company)s,
                   CASE WHEN n %% 2 = 0 THEN 'lead' || n || '@example.com' END,
                   CASE WHEN n %% 3 = 0 THEN '+7 999 ' || lpad(n::text, 7, '0') END,
                   CASE WHEN n %% 4 <> 0 THEN (1600000000000000000 + n)::text END,
                   t, %(uid)s, %(uid)s, t, t
              FROM (SELECT n, (now() AT TIME ZONE 'UTC')
                              - (%(leads)s - n) * (%(days)s * INTERVAL '1 day') / %(leads)s AS t
                      FROM generate_series(1, %(leads)s) AS n) AS l
            """,
            params,
        )
        # Twenty conversions per upload, queued a few minutes before it; the states and results
        # in the shares a working connector has (most sent, some skipped, a few in error,
        # pending, being sent).
        cr.execute(
            """
            INSERT INTO metrika_conversion (
                company_id, sale_order_id, record_name, event, order_status, metrika_order_id,
                transport, state, failure_reason, metrika_result, upload_id, sent_at,
                next_attempt_at, attempt_count, create_uid, write_uid, create_date, write_date)
            SELECT %(company)s,
                   CASE WHEN c.n <= %(orders)s / 2 THEN %(first_order)s + 2 * (c.n - 1) END,
                   'SB' || c.n,
                   CASE WHEN c.n <= %(orders)s / 2 THEN 'paid' ELSE 'in_progress' END,
                   CASE WHEN c.n <= %(orders)s / 2 THEN 'PAID' ELSE 'IN_PROGRESS' END,
                   'so-' || c.n, upload.transport, c.state,
                   CASE WHEN c.state = 'skipped' AND c.n %% 2 = 0 THEN 'no_identifier'
                        WHEN c.state = 'skipped' THEN 'link_window'
                        WHEN c.state = 'error' THEN 'bad_request'
                        WHEN c.state = 'pending' AND c.n %% 2 = 0 THEN 'auth' END,
                   CASE WHEN c.state <> 'sent' THEN NULL
                        WHEN upload.transport = 'simple_orders' THEN 'accepted'
                        WHEN upload.state = 'processed' THEN 'partly_linked'
                        ELSE 'not_linked' END,
                   CASE WHEN c.state IN ('sent', 'sending') THEN upload.id END,
                   CASE WHEN c.state = 'sent' THEN upload.create_date END,
                   upload.create_date, 1, %(uid)s, %(uid)s,
                   upload.create_date - INTERVAL '5 minutes', upload.create_date
              FROM (SELECT n,
                           CASE WHEN n %% 100 < 88 THEN 'sent'
                                WHEN n %% 100 < 94 THEN 'skipped'
                                WHEN n %% 100 < 96 THEN 'error'
                                WHEN n %% 100 < 98 THEN 'cancelled'
                                WHEN n %% 100 < 99 THEN 'pending'
                                ELSE 'sending' END AS state
                      FROM generate_series(1, %(conversions)s) AS n) AS c
              JOIN metrika_upload upload
                ON upload.id = %(first_upload)s + (c.n - 1) / %(per_upload)s
            """,
            params,
        )
        inserted = cr.rowcount
        cr.commit()
        cr.execute("ANALYZE")
        cr.commit()
    return inserted


def default_domain(env, action_xmlid):
    """The domain of the action's default filters, as the web client evaluates them today."""
    from odoo.tools.safe_eval import datetime as safe_datetime
    from odoo.tools.safe_eval import dateutil, safe_eval

    action = env.ref(action_xmlid)
    context = safe_eval(action.context or "{}")
    search = env["ir.ui.view"].browse(action.search_view_id.id)
    from lxml import etree

    arch = etree.fromstring(search.arch)
    domain = []
    for name, active in context.items():
        if not (name.startswith("search_default_") and active):
            continue
        [node] = arch.xpath("//filter[@name='%s']" % name[len("search_default_") :])
        domain += safe_eval(
            node.get("domain"),
            {
                "context_today": lambda: safe_datetime.date.today(),
                "relativedelta": dateutil.relativedelta.relativedelta,
                "datetime": safe_datetime,
            },
        )
    return domain


def view_arch_groupbys(env, model, view_type):
    """The row and column groupings and the measures a pivot or graph view opens with."""
    from lxml import etree

    arch = etree.fromstring(env[model].get_view(view_type=view_type)["arch"])
    rows, cols, measures = [], [], []
    for node in arch.iter("field"):
        name = node.get("name")
        spec = "%s:%s" % (name, node.get("interval")) if node.get("interval") else name
        kind = node.get("type")
        if kind == "measure":
            measures.append(name)
        elif kind == "col":
            cols.append(spec)
        else:
            rows.append(spec)
    return rows, cols, measures


def aggregates(model, measures):
    return ["%s:%s" % (name, model._fields[name].aggregator) for name in measures] or ["__count"]


def open_view(env, model_name, view_type, domain):
    """The calls the web client makes to show ``view_type`` of ``model_name`` with
    ``domain``; returns the groups of the grand total (to check the figures)."""
    model = env[model_name].with_context(tz="Europe/Moscow", lang="en_US")
    rows, cols, measures = view_arch_groupbys(env, model_name, view_type)
    specs = aggregates(model, measures)
    new_api = hasattr(model, "formatted_read_group")
    if view_type == "graph":
        groupby = rows + cols
        if new_api:
            model.with_context(fill_temporal=True).formatted_read_group(domain, groupby, specs)
        else:
            model.with_context(fill_temporal=True).web_read_group(
                domain, specs, groupby, lazy=False
            )
        return None
    # The pivot: the total, each row grouping and column grouping, and the cross of both.
    row_sets = [rows[:i] for i in range(len(rows) + 1)]
    col_sets = [cols[:i] for i in range(len(cols) + 1)]
    grouping_sets = [r + c for r in row_sets for c in col_sets]
    if new_api and hasattr(model, "formatted_read_grouping_sets"):
        result = model.formatted_read_grouping_sets(domain, grouping_sets, specs)
        return result[0]
    total = None
    for groupby in grouping_sets:
        groups = model.read_group(domain, specs, groupby, lazy=False)
        if not groupby:
            total = groups
    return total


def timed(env, action_xmlid, view_types, domain):
    """Seconds of each opening (median of REPEAT), and the grand total of the pivot."""
    action = env.ref(action_xmlid)
    model_name = action.res_model
    figures = {}
    total = None
    for view_type in view_types:
        runs = []
        for _run in range(REPEAT):
            env.invalidate_all()
            start = time.perf_counter()
            env[model_name].get_views([(False, mode) for mode in action.view_mode.split(",")])
            result = open_view(env, model_name, view_type, domain)
            runs.append(time.perf_counter() - start)
            total = result if result is not None else total
        figures[view_type] = (statistics.median(runs), max(runs))
    return figures, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversions", type=int, default=1_000_000)
    parser.add_argument("--uploads", type=int, default=50_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--leads", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args()
    print(machine_line(), flush=True)
    print(code_line(), flush=True)
    failures = []
    with Databases("dashboard") as databases:
        [database] = databases.install({"main": "metrika_offline_conversions"})
        registry = open_registry(database)
        start = time.perf_counter()
        inserted = fill(
            registry, args.conversions, args.uploads, args.orders, args.leads, args.customers
        )
        print(
            "filled: %s conversions, %s uploads, %s orders, %s won leads in %.0f s"
            % (inserted, args.uploads, args.orders, args.leads, time.perf_counter() - start),
            flush=True,
        )
        if inserted != args.conversions:
            failures.append("%s conversions made, not %s" % (inserted, args.conversions))
        from odoo import SUPERUSER_ID, api

        # The cron's refresh (not counted in the opening: it runs in the background).
        with registry.cursor() as cr:
            start = time.perf_counter()
            api.Environment(cr, SUPERUSER_ID, {})[
                "metrika.conversion.report"
            ]._cron_refresh_dashboard()
            print(
                "the cron's refresh of the figures: %.1f s (in the background, every 10 minutes)"
                % (time.perf_counter() - start),
                flush=True,
            )

        with registry.cursor() as cr:
            # The administrator, a Metrica manager: record rules apply, as for any user.
            env = api.Environment(cr, SUPERUSER_ID, {})
            env = env(user=env.ref("base.user_admin"))
            [(queued,)] = env["metrika.conversion.report"]._read_group([], [], ["queued_count:sum"])
            if queued != args.conversions:
                failures.append("the dashboard counts %s conversions, not %s" % (queued, inserted))
            for label, action_xmlid in (
                ("dashboard", "metrika_offline_conversions.metrika_conversion_report_action"),
                ("coverage", "metrika_offline_conversions.metrika_coverage_report_action"),
            ):
                action = env.ref(action_xmlid)
                view_types = [mode for mode in action.view_mode.split(",") if mode != "list"]
                for filtered in (True, False):
                    domain = default_domain(env, action_xmlid) if filtered else []
                    figures, _total = timed(env, action_xmlid, view_types, domain)
                    for view_type, (median, worst) in figures.items():
                        print(
                            "%-9s %-5s %-22s %.3f s (median of %d, worst %.3f s)"
                            % (
                                label,
                                view_type,
                                "default (12 weeks)" if filtered else "no filter (whole log)",
                                median,
                                REPEAT,
                                worst,
                            ),
                            flush=True,
                        )
                        if filtered and median > TARGET_SECONDS:
                            failures.append(
                                "%s %s takes %.3f s > %.1f s"
                                % (label, view_type, median, TARGET_SECONDS)
                            )
        registry.__class__.delete(database)
    for failure in failures:
        print("FAIL: %s" % failure)
    print(
        "target: each view opens in at most %.1f s of server time: %s"
        % (TARGET_SECONDS, "missed" if failures else "met")
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
