#!/usr/bin/env python3
"""Where the addon's cost of one confirmation per transaction lands: by phase of the commit.

A diagnostic beside ``bench_confirm_orders.py --commit-each`` (which checks the cost) and
``profile_confirm_orders.py`` (which counts calls and statements under cProfile): the same two
databases and drafts, confirmed one order per transaction, the databases taking turns every 10
orders. Each transaction is timed in wall-clock time (no profiler), and its SQL statements are
counted, in the phases of Odoo's ``Cursor.commit()``:

* ``confirm``: ``action_confirm()`` itself (with the addon, its ``INSERT … ON CONFLICT`` of the
  order's conversion row runs here);
* ``orm flush``: the ORM's pending writes and recomputations (the order's UPDATE);
* ``precommit``: the precommit hooks, each timed on its own (mail tracking, and the addon's cron
  trigger, whose statements run once per 10-second slot and process);
* ``COMMIT``, then ``after``: clearing the transaction and the postcommit hooks.

It prints, per order, each phase and each hook for both sides and the difference, in ms and in
statements. The addon's side must have queued one conversion row per order in every round (an
error otherwise), and the stand-in must have received nothing (exit status 1 otherwise). No
target: this names where the cost goes, the benchmark checks it.

    python3 benchmarks/phases_confirm_orders.py [--orders N] [--rounds R]
"""

import argparse
import collections
import sys
import time

import bench_confirm_orders as confirm_bench
from odoo_bench import ADDON, Databases, StandInProcess, code_line, machine_line, open_registry

PHASES = ("confirm", "orm flush", "precommit", "COMMIT", "after")
CHUNK = 10


def hook_name(func):
    code = getattr(func, "__code__", None)
    return "%s (line %s)" % (
        getattr(func, "__qualname__", repr(func)),
        code.co_firstlineno if code else "?",
    )


class PhaseSession(confirm_bench.ConfirmSession):
    """Confirms one order per transaction, running ``Cursor.commit()``'s steps one by one."""

    def __init__(self, *args, phases, hooks, statements, **kwargs):
        super().__init__(*args, per_order="commit", **kwargs)
        self.phases = phases
        self.hooks = hooks
        self.phase_statements = statements

    def _run_precommit(self):
        precommit, cr = self.cr.precommit, self.cr
        while precommit._funcs:
            func = precommit._funcs.popleft()
            start, count = time.perf_counter(), cr.sql_log_count
            func()
            self.hooks[hook_name(func)] += time.perf_counter() - start
            self.phase_statements[hook_name(func)] += cr.sql_log_count - count
        precommit.clear()

    def confirm(self, order_ids):
        orders, cr, clock = self.env["sale.order"], self.cr, time.perf_counter

        def mark():
            return clock(), cr.sql_log_count

        def work():
            for order_id in order_ids:
                marks = [mark()]
                orders.browse(order_id).action_confirm()
                marks.append(mark())
                cr.transaction.flush()
                marks.append(mark())
                self._run_precommit()
                marks.append(mark())
                cr._cnx.commit()
                marks.append(mark())
                # The rest of Cursor.commit(), in its order.
                cr.clear()
                cr._now = None
                cr.prerollback.clear()
                cr.postrollback.clear()
                cr.postcommit.run()
                marks.append(mark())
                for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
                    self.phases[phase] += end[0] - start[0]
                    self.phase_statements[phase] += end[1] - start[1]

        self._timed(work)


def phase_round(registries, drafts, expect, marks, totals):
    sessions = {
        label: PhaseSession(
            registries[label],
            drafts[label],
            expect[label],
            marks=marks[label],
            phases=totals[label]["phases"],
            hooks=totals[label]["hooks"],
            statements=totals[label]["statements"],
        )
        for label in registries
    }
    return confirm_bench.run_round(sessions, drafts, CHUNK, vacuum_after=True)


def new_totals():
    return {
        label: {
            "phases": collections.Counter(),
            "hooks": collections.Counter(),
            # By phase and by hook name: statements are counted for both.
            "statements": collections.Counter(),
        }
        for label in ("without", "with")
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="orders per round (300)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (3)")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)

    with Databases("phases") as dbs, StandInProcess(confirm_bench.TOKEN) as stand_in:
        base_db, addon_db = dbs.install({"base": "sale_crm", "addon": ADDON})
        registries = {"without": open_registry(base_db), "with": open_registry(addon_db)}
        confirm_bench.configure_company(registries["with"], stand_in.url)
        drafts = {
            "without": confirm_bench.make_drafts(registries["without"], args.orders, False),
            "with": confirm_bench.make_drafts(registries["with"], args.orders, True),
        }
        marks = {
            label: confirm_bench.snapshot_drafts(registries[label], drafts[label])
            for label in registries
        }
        expect = {"without": None, "with": args.orders}
        phase_round(registries, drafts, expect, marks, new_totals())  # warm-up, not counted
        totals = new_totals()
        for round_no in range(1, args.rounds + 1):
            figures = phase_round(registries, drafts, expect, marks, totals)
            print(
                "round %d: %s"
                % (
                    round_no,
                    ", ".join(
                        "%s addon %.3f ms/order, %.2f statements/order"
                        % (
                            label,
                            1000 * figures[label][0] / args.orders,
                            figures[label][2] / args.orders,
                        )
                        for label in ("without", "with")
                    ),
                )
                + ", queued %d conversion rows (undone)" % figures["with"][3]["queued"],
                flush=True,
            )
        received = stand_in.summary()["requests"]

    per_order = 1000 / (args.orders * args.rounds)  # seconds in total -> ms per order
    orders = args.orders * args.rounds
    print("\nper order, one transaction per order: ms (wall clock) and SQL statements")
    rows = []
    for kind, names in (
        ("phases", PHASES),
        ("hooks", sorted(set(totals["without"]["hooks"]) | set(totals["with"]["hooks"]))),
    ):
        for name in names:
            without = totals["without"][kind][name] * per_order
            with_addon = totals["with"][kind][name] * per_order
            count_without = totals["without"]["statements"][name] / orders
            count_with = totals["with"]["statements"][name] / orders
            rows.append(
                (
                    name if kind == "phases" else "  precommit hook " + name,
                    without,
                    with_addon,
                    with_addon - without,
                    count_without,
                    count_with,
                    count_with - count_without,
                )
            )
    width = max(len(row[0]) for row in rows)
    print(
        "%-*s %9s %9s %9s   %9s %9s %9s"
        % (width, "", "without", "with", "added", "without", "with", "added")
    )
    for row in rows:
        print("%-*s %9.3f %9.3f %+9.3f   %9.3f %9.3f %+9.3f" % (width, *row))
    print("stand-in received %d requests" % received)
    return 1 if received else 0


if __name__ == "__main__":
    sys.exit(main())
