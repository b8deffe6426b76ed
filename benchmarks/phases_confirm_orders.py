#!/usr/bin/env python3
"""Where the addon's cost of one confirmation per transaction lands: by phase of the commit.

A diagnostic beside ``bench_confirm_orders.py --commit-each`` (which checks the cost) and
``profile_confirm_orders.py`` (which counts calls and statements under cProfile): the same two
databases and drafts, confirmed one order per transaction, the databases taking turns every 10
orders. Each transaction is timed in wall-clock time (no profiler) in the phases of Odoo's
``Cursor.commit()``:

* ``confirm``: ``action_confirm()`` itself;
* ``orm flush``: the ORM's pending writes and recomputations (the order's UPDATE carries the
  events the addon queued on it);
* ``precommit``: the precommit hooks, each timed on its own (mail tracking, and the addon's
  check that its queued events were flushed, and its cron trigger);
* ``COMMIT``, then ``after``: clearing the transaction and the postcommit hooks.

It prints, per order, each phase and each hook for both sides and the difference. No target, so
no exit status beyond errors: this names where the cost goes, the benchmark checks it.

    python3 benchmarks/phases_confirm_orders.py [--orders N] [--rounds R]
"""

import argparse
import collections
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

    def __init__(self, *args, phases, hooks, **kwargs):
        super().__init__(*args, per_order="commit", **kwargs)
        self.phases = phases
        self.hooks = hooks

    def _run_precommit(self):
        precommit = self.cr.precommit
        while precommit._funcs:
            func = precommit._funcs.popleft()
            start = time.perf_counter()
            func()
            self.hooks[hook_name(func)] += time.perf_counter() - start
        precommit.clear()

    def confirm(self, order_ids):
        orders, cr, clock = self.env["sale.order"], self.cr, time.perf_counter

        def work():
            for order_id in order_ids:
                marks = [clock()]
                orders.browse(order_id).action_confirm()
                marks.append(clock())
                cr.transaction.flush()
                marks.append(clock())
                self._run_precommit()
                marks.append(clock())
                cr._cnx.commit()
                marks.append(clock())
                # The rest of Cursor.commit(), in its order.
                cr.clear()
                cr._now = None
                cr.prerollback.clear()
                cr.postrollback.clear()
                cr.postcommit.run()
                marks.append(clock())
                for phase, start, end in zip(PHASES, marks, marks[1:], strict=False):
                    self.phases[phase] += end - start

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
        )
        for label in registries
    }
    return confirm_bench.run_round(sessions, drafts, CHUNK, vacuum_after=True)


def new_totals():
    return {
        label: {
            "phases": collections.Counter(),
            "hooks": collections.Counter(),
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
                        "%s addon %.3f ms/order" % (label, 1000 * figures[label][0] / args.orders)
                        for label in ("without", "with")
                    ),
                ),
                flush=True,
            )
        received = stand_in.summary()["requests"]

    per_order = 1000 / (args.orders * args.rounds)  # seconds in total -> ms per order
    print("\nms per order (wall clock), one transaction per order:")
    print("%-84s %9s %9s %9s" % ("", "without", "with", "added"))
    for kind, names in (
        ("phases", PHASES),
        ("hooks", sorted(set(totals["without"]["hooks"]) | set(totals["with"]["hooks"]))),
    ):
        for name in names:
            without = totals["without"][kind][name] * per_order
            with_addon = totals["with"][kind][name] * per_order
            label = name if kind == "phases" else "  precommit hook " + name
            print("%-84s %9.3f %9.3f %+9.3f" % (label, without, with_addon, with_addon - without))
    print("stand-in received %d requests" % received)


if __name__ == "__main__":
    main()
