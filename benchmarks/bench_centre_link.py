#!/usr/bin/env python3
"""The Conversion Centre link serving 100,000 orders: time to the last byte and server memory.

One fresh database with the addon; its queue of orders made with SQL as
``bench_drain_queue.make_queue`` makes it (100,000 distinct customers with an e-mail and a
phone, one in four with a mobile too; confirmed orders created over the last 20 days, two in
three with a ClientID; one conversion per order), the company serving the link with sending
to Metrica off. A real Odoo server is started on the database (``python3 -m odoo --workers 0``,
as bench_freshness.py starts it) and the link is fetched over HTTP on 127.0.0.1:

* **cold, unprepared** (printed, no target): the first GET after the server started, on a
  link turned on before the hourly preparation cron ran: every phone number is normalised
  during the fetch (and remembered in ``metrika.normalized.phone``);
* then the memo is emptied, the preparation cron is run (as the hourly cron would have, timed)
  and a new server is started;
* **cold**: the first GET after that server started (nothing of the file cached in the
  process; the phone numbers prepared in the database);
* **warm**: a second GET, as the Centre's next poll;
* a HEAD and a conditional GET (If-None-Match), which must answer without the body (304).

The cron is switched off in the servers (so it never runs beside a measured fetch).

Measured for each GET: the time from sending the request to its last byte (target at most
3 s), the rows received (every order must be there, once), and the server process's peak
resident memory during the fetch, above its resident memory when idle just before (target at
most 150 MB more): the peak is the kernel's high-water mark (``VmHWM``, reset through
``/proc/<pid>/clear_refs`` before each fetch), the idle value ``VmRSS``.

    python3 benchmarks/bench_centre_link.py [--orders N]

Prints the machine, the figures and OK or FAIL; exits 1 when a target is missed or a check
fails.
"""

import argparse
import csv
import io
import os
import sys
import time
import urllib.request

from bench_drain_queue import make_queue
from bench_freshness import OdooServer
from odoo_bench import ADDON, Databases, code_line, machine_line, open_registry

MAX_SECONDS = 3.0
MAX_EXTRA_MB = 150.0
ROUTE = "/metrika/conversion-centre"


def proc_status_mb(pid, key):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no %s in /proc/%d/status" % (key, pid))


def cpu_seconds(pid):
    # utime + stime of the process (all its threads), fields 14 and 15 of /proc/<pid>/stat.
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid):
    # Writing 5 resets the process's peak resident set size (VmHWM) to its current one.
    with open("/proc/%d/clear_refs" % pid, "w") as clear_refs:
        clear_refs.write("5")


def enable_link(registry):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        env.company.write({"metrika_enabled": False, "metrika_centre_link_enabled": True})
        return env.company.metrika_centre_secret


def switch_off_preparation_cron(registry):
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # commits on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        cron = env.ref("metrika_offline_conversions.ir_cron_metrika_centre_phones")
        cron.active = False
        env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()


def forget_phones(registry):
    with registry.cursor() as cr:  # commits on exit
        cr.execute("DELETE FROM metrika_normalized_phone")


def prepare_phones(registry):
    """Run the preparation cron's job as the hourly cron would have; the numbers remembered."""
    from odoo import SUPERUSER_ID, api

    with registry.cursor() as cr:  # the job commits per batch; commits the rest on exit
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["metrika.normalized.phone"]._cron_prepare_centre_phones()
        cr.execute("SELECT COUNT(*) FROM metrika_normalized_phone")
        return cr.fetchone()[0]


def remembered_phones(registry):
    with registry.cursor() as cr:
        cr.execute("SELECT COUNT(*) FROM metrika_normalized_phone")
        return cr.fetchone()[0]


def fetch(url, method="GET", headers=None):
    """(status, headers, body, seconds to the first byte, seconds to the last byte)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    started = time.monotonic()
    try:
        answer = urllib.request.urlopen(request, timeout=120)  # noqa: S310 - local server
    except urllib.error.HTTPError as error:
        if error.code != 304:
            raise
        return error.code, error.headers, b"", None, time.monotonic() - started
    with answer:
        first = answer.read(1)
        first_byte = time.monotonic() - started
        chunks = [first]
        while chunk := answer.read(65536):
            chunks.append(chunk)
        return (
            answer.status,
            answer.headers,
            b"".join(chunks),
            first_byte,
            (time.monotonic() - started),
        )


def measured_get(server, url, label, order_count, failures, target=True):
    pid = server.proc.pid
    idle = proc_status_mb(pid, "VmRSS")
    reset_peak(pid)
    cpu_before = cpu_seconds(pid)
    status, headers, body, first_byte, last_byte = fetch(url)
    cpu = cpu_seconds(pid) - cpu_before
    peak = proc_status_mb(pid, "VmHWM")
    extra = peak - idle
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8")), delimiter=";"))
    ids = {row["id"] for row in rows}
    print(
        "%s GET: HTTP %s, %d rows (%d distinct ids), %.1f MB, first byte %.3f s, last byte "
        "%.3f s (%s); server RSS idle %.0f MB, peak %.0f MB, +%.0f MB (%s)"
        % (
            label,
            status,
            len(rows),
            len(ids),
            len(body) / 1e6,
            first_byte,
            last_byte,
            "target <= %.1f s" % MAX_SECONDS if target else "no target",
            idle,
            peak,
            extra,
            "target <= %.0f MB" % MAX_EXTRA_MB if target else "no target",
        ),
        flush=True,
    )
    # On a shared machine the wall time above includes waiting for a CPU: the server's own
    # CPU time, and the load, say how much.
    print(
        "%s GET: server process CPU %.3f s; load average %.1f on %d CPUs"
        % (label, cpu, os.getloadavg()[0], os.cpu_count()),
        flush=True,
    )
    if status != 200 or len(rows) != order_count or len(ids) != order_count:
        failures.append("%s GET: expected %d distinct orders" % (label, order_count))
    if not target:
        return headers
    if last_byte > MAX_SECONDS:
        failures.append("%s GET: last byte after %.3f s" % (label, last_byte))
    if extra > MAX_EXTRA_MB:
        failures.append("%s GET: server memory +%.0f MB" % (label, extra))
    return headers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=100000, help="orders served (100,000)")
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    print(code_line(), flush=True)
    failures = []
    server = None
    with Databases("centre_link") as dbs:
        try:
            started = time.monotonic()
            (database,) = dbs.install({"addon": ADDON})
            print("installed %s in %.0f s" % (database, time.monotonic() - started), flush=True)
            registry = open_registry(database)
            started = time.monotonic()
            make_queue(registry, args.orders, "c")
            secret = enable_link(registry)
            switch_off_preparation_cron(registry)
            print(
                "%d orders, customers and conversions made in %.0f s"
                % (args.orders, time.monotonic() - started),
                flush=True,
            )
            server = OdooServer(database)
            server.wait_ready()
            url = "%s%s/%s.csv" % (server.url, ROUTE, secret)
            measured_get(server, url, "cold, unprepared", args.orders, failures, target=False)
            print(
                "phone numbers remembered by that fetch: %d" % remembered_phones(registry),
                flush=True,
            )
            errors = server.error_lines()
            if errors:
                failures.append("server errors: %s" % errors[:3])
            server.stop()
            server = None
            forget_phones(registry)
            started = time.monotonic()
            remembered = prepare_phones(registry)
            print(
                "preparation cron: %d phone numbers remembered in %.1f s (load average %.1f)"
                % (remembered, time.monotonic() - started, os.getloadavg()[0]),
                flush=True,
            )
            server = OdooServer(database)
            server.wait_ready()
            url = "%s%s/%s.csv" % (server.url, ROUTE, secret)
            headers = measured_get(server, url, "cold", args.orders, failures)
            measured_get(server, url, "warm", args.orders, failures)

            status, head_headers, body, _first, seconds = fetch(url, method="HEAD")
            print("HEAD: HTTP %s, %d bytes of body, %.3f s" % (status, len(body), seconds))
            if status != 200 or body or head_headers["ETag"] != headers["ETag"]:
                failures.append("HEAD: expected 200, no body and the GET's ETag")
            status, _headers, body, _first, seconds = fetch(
                url, headers={"If-None-Match": headers["ETag"]}
            )
            print("conditional GET (If-None-Match): HTTP %s, %.3f s" % (status, seconds))
            if status != 304 or body:
                failures.append("conditional GET: expected 304 without a body")
            errors = server.error_lines()
            print("server log: %d ERROR lines" % len(errors))
            if errors:
                failures.append("server errors: %s" % errors[:3])
        finally:
            if server is not None:
                server.stop()
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
