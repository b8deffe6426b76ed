#!/usr/bin/env python3
"""Where the Conversion Centre link's warm fetch spends its time: a diagnostic beside
``bench_centre_link.py`` (which measures it over HTTP).

The same database as the benchmark (100,000 orders made by SQL, the link on, the phone
numbers prepared by the preparation cron's job), then, in this process, on one cursor:

* the orders read alone (``tools.centre_link.iter_orders``): wall and CPU time, the gap being
  the time spent waiting for PostgreSQL;
* the whole file (``iter_centre_csv`` over those orders): wall and CPU time;
* the file again under cProfile: the functions with the most time of their own.

    python3 benchmarks/profile_centre_link.py [--orders N] [--top K]

No target: this names the cost, the benchmark checks it.
"""

import argparse
import cProfile
import pstats
import sys
import time
from datetime import datetime, timezone

from bench_centre_link import enable_link, prepare_phones, switch_off_preparation_cron
from bench_drain_queue import make_queue
from odoo_bench import ADDON, Databases, code_line, machine_line, open_registry


def timed(label, work):
    wall, cpu = time.monotonic(), time.process_time()
    result = work()
    print(
        "%s: wall %.3f s, CPU of this process %.3f s"
        % (label, time.monotonic() - wall, time.process_time() - cpu),
        flush=True,
    )
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=100000, help="orders served (100,000)")
    parser.add_argument("--top", type=int, default=20, help="functions listed (20)")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)
    with Databases("centre_profile") as dbs:
        (database,) = dbs.install({"addon": ADDON})
        registry = open_registry(database)
        make_queue(registry, args.orders, "c")
        enable_link(registry)
        switch_off_preparation_cron(registry)
        print("phone numbers prepared: %d" % prepare_phones(registry), flush=True)

        from odoo import SUPERUSER_ID, api

        from odoo.addons.metrika_offline_conversions.metrika_core.formats import (
            centre_link as centre_format,
        )
        from odoo.addons.metrika_offline_conversions.tools import centre_link

        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            company = env.company
            now = datetime.now(timezone.utc)
            region = company._metrika_phone_region()
            time_zone = centre_link.company_time_zone(company)

            def orders():
                return centre_link.iter_orders(env, company.id, now, region)

            def read_orders():
                return sum(1 for _order in orders())

            def write_file():
                return sum(
                    len(chunk) for chunk in centre_format.iter_centre_csv(orders(), time_zone, now)
                )

            count = timed("orders read (SQL and rows)", read_orders)
            size = timed("whole file", write_file)
            print("%d orders, %d bytes" % (count, size), flush=True)
            profile = cProfile.Profile()
            profile.runcall(write_file)
            pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(args.top)
            cr.rollback()
    return 0


if __name__ == "__main__":
    sys.exit(main())
