#!/usr/bin/env python3
"""Where the addon's cost of confirming an order goes: SQL statements and a profile, compared.

A diagnostic beside ``bench_confirm_orders.py`` (which measures the cost): the same two
databases (``sale_crm`` only, and the addon configured to send), the same drafts, confirmed one
order per transaction (``action_confirm()`` then ``commit()``, as in the UI), the two databases
taking turns every 10 orders, each with its own cursor. Wall-clock time is
not what this looks at (on a shared machine it is noise); it prints, per order:

* every SQL statement (by its text, parameters left out; counted exactly, see
  ``odoo_bench.StatementLog``) that runs more or less often with the addon than without it, with
  the counts of both sides: the added statements, and what they are (with the addon, the
  ``INSERT … ON CONFLICT`` of the order's conversion row, and the cron trigger's statements,
  which run once per 10-second slot and process);
* the addon's functions under cProfile (calls and cumulative CPU time per order), and the Odoo
  functions whose cumulative time differs most between the two sides.

Three sides in fact: without the addon, the addon with its queueing made a no-op (what its
fields and overrides cost), and the addon. The addon's side must have queued one conversion row
per confirmed order, the no-op side none (an error otherwise), and the stand-in must have
received nothing (exit status 1 otherwise).

    python3 benchmarks/profile_confirm_orders.py [--orders N] [--warm-up W] [--top K] [--chunk C]

No target: this names the cost, the benchmark checks it.
"""

import argparse
import cProfile
import pstats
import sys
import time

from bench_confirm_orders import (
    ADMIN_UID,
    ENQUEUE_METHOD,
    TOKEN,
    backend_cpu_seconds,
    check_conversions,
    configure_company,
    make_drafts,
)
from odoo_bench import (
    ADDON,
    Databases,
    StandInProcess,
    StatementLog,
    code_line,
    machine_line,
    open_registry,
)


class Confirmer:
    """One database's side: its own cursor, confirming one order per transaction."""

    def __init__(self, registry, queueing=True):
        from odoo import api

        self.registry = registry
        self.queueing = queueing
        self.cr = registry.cursor()
        self.orders = api.Environment(self.cr, ADMIN_UID, {})["sale.order"]
        self.profiler = cProfile.Profile(time.thread_time)  # CPU time: less sensitive to load
        self.cpu = self.backend_cpu = self.wall = 0.0

    def confirm(self, order_ids, profile):
        backend = backend_cpu_seconds(self.cr) if profile else None
        model = self.registry["metrika.conversion"] if not self.queueing else None
        if model is not None:
            # The addon installed and configured, its queueing a no-op: what its mere presence
            # (fields, indexes, overrides) costs.
            setattr(model, ENQUEUE_METHOD, lambda *args, **kwargs: None)
        cpu, wall = time.thread_time(), time.perf_counter()
        if profile:
            self.profiler.enable()
        try:
            for order_id in order_ids:
                self.orders.browse(order_id).action_confirm()
                self.cr.commit()
        finally:
            if profile:
                self.profiler.disable()
            if model is not None:
                delattr(model, ENQUEUE_METHOD)  # back to the class's own method
        if profile:
            self.cpu += time.thread_time() - cpu
            self.wall += time.perf_counter() - wall
            self.backend_cpu += backend_cpu_seconds(self.cr) - backend

    def close(self):
        self.cr.close()


def confirm_interleaved(confirmers, drafts, chunk, profile, log):
    """Both sides take turns every ``chunk`` orders, so load from elsewhere hits both alike;
    with ``profile``, each side's statements are counted into ``log.counts[side]``."""
    labels = list(confirmers)
    count = len(drafts[labels[0]])
    for number, start in enumerate(range(0, count, chunk)):
        for label in labels if number % 2 == 0 else labels[::-1]:
            confirmer = confirmers[label]
            if profile:
                with log.recording(confirmer.cr.dbname, label):
                    confirmer.confirm(drafts[label][start : start + chunk], profile)
            else:
                confirmer.confirm(drafts[label][start : start + chunk], profile)


def function_label(key):
    filename, line, name = key
    for marker in ("/odoo/addons/", "/addons/", "/odoo/", ADDON + "/", "/lib/python"):
        if marker in filename:
            filename = filename[filename.index(marker) + len(marker) - 1 :].lstrip("/")
            break
    return "%s:%d(%s)" % (filename, line, name)


SIDES = ("without", "presence", "with")
SIDE_TITLES = {
    "without": "without the addon (sale_crm only)",
    "presence": "the addon installed and sending, its queueing made a no-op",
    "with": "with the addon",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="orders per side (300)")
    parser.add_argument("--warm-up", type=int, default=50, help="orders confirmed first (50)")
    parser.add_argument("--top", type=int, default=25, help="profile lines shown (25)")
    parser.add_argument("--chunk", type=int, default=10, help="orders per turn of a side (10)")
    parser.add_argument(
        "--databases",
        nargs=2,
        metavar=("BASE", "ADDON"),
        help="existing databases (sale_crm; the addon) instead of fresh ones, not dropped",
    )
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)
    log = StatementLog().install()
    count = args.orders + args.warm_up
    with Databases("profile") as dbs, StandInProcess(TOKEN) as stand_in:
        if args.databases:
            base_db, addon_db = args.databases
        else:
            base_db, addon_db = dbs.install({"base": "sale_crm", "addon": ADDON})
        registries = {"without": open_registry(base_db), "with": open_registry(addon_db)}
        registries["presence"] = registries["with"]
        configure_company(registries["with"], stand_in.url)
        drafts = {
            side: make_drafts(registries[side], count, with_client_ids=side != "without")
            for side in SIDES
        }
        confirmers = {
            side: Confirmer(registries[side], queueing=side != "presence") for side in SIDES
        }
        try:
            warm = {side: ids[: args.warm_up] for side, ids in drafts.items()}
            confirm_interleaved(confirmers, warm, args.chunk, False, log)
            timed = {side: ids[args.warm_up :] for side, ids in drafts.items()}
            confirm_interleaved(confirmers, timed, args.chunk, True, log)
            for side, confirmer in confirmers.items():
                if side != "without":
                    check_conversions(confirmer.cr, drafts[side], count if side == "with" else 0)
        finally:
            for confirmer in confirmers.values():
                confirmer.close()
        received = stand_in.summary()["requests"]

    per_order = args.orders
    stats = {side: pstats.Stats(c.profiler) for side, c in confirmers.items()}
    print()
    print(
        "per order (CPU under cProfile, inflated alike; function calls and statements are exact):"
    )
    for side in SIDES:
        confirmer = confirmers[side]
        print(
            "  %-8s %8.0f function calls, %6.2f statements, CPU %7.3f ms + PostgreSQL backend "
            "%6.3f ms: %s"
            % (
                side,
                stats[side].total_calls / per_order,
                sum(log.counts[side].values()) / per_order,
                1000 * confirmer.cpu / per_order,
                1000 * confirmer.backend_cpu / per_order,
                SIDE_TITLES[side],
            )
        )
    print("stand-in requests: %d" % received)

    def compare(side, base):
        print("statements whose count per order differs, %s - %s:" % (side, base))
        shapes = set(log.counts[side]) | set(log.counts[base])
        rows = [
            (
                (log.counts[side][shape] - log.counts[base][shape]) / per_order,
                log.counts[base][shape] / per_order,
                log.counts[side][shape] / per_order,
                shape,
            )
            for shape in shapes
            if log.counts[side][shape] != log.counts[base][shape]
        ]
        for delta, before, after, shape in sorted(rows, key=lambda row: -abs(row[0])):
            print("  %+6.2f  (%5.2f -> %5.2f)  %s" % (delta, before, after, shape[:240]))
        after = {key: (row[1], row[3]) for key, row in stats[side].stats.items()}
        before = {key: (row[1], row[3]) for key, row in stats[base].stats.items()}
        print("functions called more often per order, %s - %s (outside the addon):" % (side, base))
        grown = sorted(
            (
                (calls - before.get(key, (0, 0.0))[0], key)
                for key, (calls, _cum) in after.items()
                if ADDON not in key[0]
            ),
            reverse=True,
        )
        for delta, key in grown[: args.top]:
            if delta <= 0:
                break
            print(
                "  %+8.2f calls (%.2f -> %.2f)  %s"
                % (
                    delta / per_order,
                    before.get(key, (0, 0.0))[0] / per_order,
                    after[key][0] / per_order,
                    function_label(key),
                )
            )

    compare("presence", "without")
    compare("with", "presence")
    print("the addon's functions (with), by cumulative CPU per order:")
    addon_rows = sorted(
        ((row[3], row[1], key) for key, row in stats["with"].stats.items() if ADDON in key[0]),
        reverse=True,
    )
    for cum, calls, key in addon_rows[: args.top]:
        print(
            "  %7.3f ms  %6.2f calls  %s"
            % (1000 * cum / per_order, calls / per_order, function_label(key))
        )
    return 1 if received else 0


if __name__ == "__main__":
    sys.exit(main())
