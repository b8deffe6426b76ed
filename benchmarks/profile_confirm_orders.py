#!/usr/bin/env python3
"""Where the addon's cost of confirming an order goes: SQL statements and a profile, compared.

A diagnostic beside ``bench_confirm_orders.py`` (which measures the cost): the same two
databases (``sale_crm`` only, and the addon configured to send), the same drafts, confirmed one
order per transaction (``action_confirm()`` then ``commit()``, as in the UI), the two databases
taking turns every 10 orders, each with its own cursor. Wall-clock time is
not what this looks at (on a shared machine it is noise); it prints, per order:

* every SQL statement (by its text, parameters left out) that runs more or less often with the
  addon than without it, with the counts of both sides: the added queries, and what they are;
* the addon's functions under cProfile (calls and cumulative CPU time per order), and the Odoo
  functions whose cumulative time differs most between the two sides.

    python3 benchmarks/profile_confirm_orders.py [--orders N] [--warm-up W] [--top K] [--chunk C]

No target, so no exit status beyond errors: this names the cost, the benchmark checks it.
"""

import argparse
import collections
import cProfile
import pstats
import re
import sys
import time

from bench_confirm_orders import (
    ADMIN_UID,
    TOKEN,
    backend_cpu_seconds,
    configure_company,
    make_drafts,
)
from odoo_bench import ADDON, Databases, StandInProcess, code_line, machine_line, open_registry

# Multi-row VALUES and long IN lists differ only by their length: one statement shape.
_REPEATED_PLACEHOLDERS = re.compile(
    r"(\(\s*(?:%s\s*,\s*)*%s\s*\))(\s*,\s*\(\s*(?:%s\s*,\s*)*%s\s*\))+"
)
_SPACES = re.compile(r"\s+")


def statement_shape(query):
    text = _SPACES.sub(" ", str(query)).strip()
    return _REPEATED_PLACEHOLDERS.sub(r"\1, ...", text)


class StatementLog:
    """Counts the statements run on one database's cursors while ``active``."""

    def __init__(self):
        self.counts = {"with": collections.Counter(), "without": collections.Counter()}
        self.active_db = self.label = None

    def install(self):
        import odoo.sql_db

        log, original = self, odoo.sql_db.Cursor.execute

        def execute(cursor, query, params=None, log_exceptions=True):
            if log.active_db == cursor.dbname:
                code = query.code if isinstance(query, odoo.tools.SQL) else query
                log.counts[log.label][statement_shape(code)] += 1
            return original(cursor, query, params, log_exceptions)

        odoo.sql_db.Cursor.execute = execute


class Confirmer:
    """One database's side: its own cursor, confirming one order per transaction."""

    def __init__(self, registry):
        from odoo import api

        self.cr = registry.cursor()
        self.orders = api.Environment(self.cr, ADMIN_UID, {})["sale.order"]
        self.profiler = cProfile.Profile(time.thread_time)  # CPU time: less sensitive to load
        self.cpu = self.backend_cpu = self.wall = 0.0

    def confirm(self, order_ids, profile):
        backend = backend_cpu_seconds(self.cr) if profile else None
        cpu, wall = time.thread_time(), time.perf_counter()
        if profile:
            self.profiler.enable()
        for order_id in order_ids:
            self.orders.browse(order_id).action_confirm()
            self.cr.commit()
        if profile:
            self.profiler.disable()
            self.cpu += time.thread_time() - cpu
            self.wall += time.perf_counter() - wall
            if backend is not None:
                self.backend_cpu += backend_cpu_seconds(self.cr) - backend

    def close(self):
        self.cr.close()


def confirm_interleaved(confirmers, drafts, chunk, profile, log):
    """Both sides take turns every ``chunk`` orders, so load from elsewhere hits both alike."""
    labels = list(confirmers)
    count = len(drafts[labels[0]])
    for number, start in enumerate(range(0, count, chunk)):
        for label in labels if number % 2 == 0 else labels[::-1]:
            log.active_db = confirmers[label].cr.dbname if profile else None
            log.label = label
            confirmers[label].confirm(drafts[label][start : start + chunk], profile)
    log.active_db = None


def function_label(key):
    filename, line, name = key
    for marker in ("/odoo/addons/", "/addons/", "/odoo/", ADDON + "/", "/lib/python"):
        if marker in filename:
            filename = filename[filename.index(marker) + len(marker) - 1 :].lstrip("/")
            break
    return "%s:%d(%s)" % (filename, line, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="orders compared (300)")
    parser.add_argument("--warm-up", type=int, default=50, help="orders confirmed first (50)")
    parser.add_argument("--top", type=int, default=25, help="profile lines shown (25)")
    parser.add_argument("--chunk", type=int, default=10, help="orders per turn of a side (10)")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)
    log = StatementLog()
    log.install()
    count = args.orders + args.warm_up
    with Databases("profile") as dbs, StandInProcess(TOKEN) as stand_in:
        base_db, addon_db = dbs.install({"base": "sale_crm", "addon": ADDON})
        registries = {"without": open_registry(base_db), "with": open_registry(addon_db)}
        configure_company(registries["with"], stand_in.url)
        drafts = {
            "without": make_drafts(registries["without"], count, with_client_ids=False),
            "with": make_drafts(registries["with"], count, with_client_ids=True),
        }
        confirmers = {label: Confirmer(registry) for label, registry in registries.items()}
        try:
            warm = {label: ids[: args.warm_up] for label, ids in drafts.items()}
            confirm_interleaved(confirmers, warm, args.chunk, False, log)
            timed = {label: ids[args.warm_up :] for label, ids in drafts.items()}
            confirm_interleaved(confirmers, timed, args.chunk, True, log)
        finally:
            for confirmer in confirmers.values():
                confirmer.close()
        statements = log.counts
        stats = {label: pstats.Stats(c.profiler).stats for label, c in confirmers.items()}
        cpu = {label: c.cpu for label, c in confirmers.items()}
        backend = {label: c.backend_cpu for label, c in confirmers.items()}
        wall = {label: c.wall for label, c in confirmers.items()}
        received = stand_in.summary()["requests"]

    per_order = args.orders
    print()
    print(
        "CPU of this thread per order (under cProfile, so inflated alike): without %.3f ms, "
        "with %.3f ms (%+.1f%%)"
        % (
            1000 * cpu["without"] / per_order,
            1000 * cpu["with"] / per_order,
            100 * (cpu["with"] / cpu["without"] - 1),
        )
    )
    print(
        "PostgreSQL backend CPU per order: without %.3f ms, with %.3f ms (%+.3f ms); wall time "
        "per order (under cProfile, noisy): without %.3f ms, with %.3f ms"
        % (
            1000 * backend["without"] / per_order,
            1000 * backend["with"] / per_order,
            1000 * (backend["with"] - backend["without"]) / per_order,
            1000 * wall["without"] / per_order,
            1000 * wall["with"] / per_order,
        )
    )
    total = {label: sum(counts.values()) for label, counts in statements.items()}
    print(
        "queries per order: without %.2f, with %.2f (%+.2f); stand-in requests: %d"
        % (
            total["without"] / per_order,
            total["with"] / per_order,
            (total["with"] - total["without"]) / per_order,
            received,
        )
    )
    print("statements whose count per order differs (with - without):")
    shapes = set(statements["with"]) | set(statements["without"])
    differing = sorted(
        (
            (statements["with"][shape] - statements["without"][shape]) / per_order,
            statements["without"][shape] / per_order,
            statements["with"][shape] / per_order,
            shape,
        )
        for shape in shapes
        if statements["with"][shape] != statements["without"][shape]
    )
    for delta, without, with_, shape in sorted(differing, key=lambda row: -abs(row[0])):
        print("  %+6.2f  (%5.2f -> %5.2f)  %s" % (delta, without, with_, shape[:300]))

    def cumulative(label):
        return {key: (row[1], row[3]) for key, row in stats[label].items()}  # (calls, cumtime)

    with_cum, without_cum = cumulative("with"), cumulative("without")
    print("the addon's functions, by cumulative CPU per order:")
    addon_rows = sorted(
        ((cum, calls, key) for key, (calls, cum) in with_cum.items() if ADDON in key[0]),
        reverse=True,
    )
    for cum, calls, key in addon_rows[: args.top]:
        print(
            "  %7.3f ms  %6.2f calls  %s"
            % (1000 * cum / per_order, calls / per_order, function_label(key))
        )
    print("functions whose cumulative CPU per order grows most with the addon:")
    grown = sorted(
        (
            (with_cum[key][1] - without_cum.get(key, (0, 0.0))[1], key)
            for key in with_cum
            if ADDON not in key[0]
        ),
        reverse=True,
    )
    for delta, key in grown[: args.top]:
        calls_with = with_cum[key][0]
        calls_without = without_cum.get(key, (0, 0.0))[0]
        print(
            "  %+7.3f ms  calls %6.2f -> %6.2f  %s"
            % (
                1000 * delta / per_order,
                calls_without / per_order,
                calls_with / per_order,
                function_label(key),
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
