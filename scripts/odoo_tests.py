"""Install the addons, beside the shop modules, on a fresh database; run their Odoo tests.

Odoo's own test runner runs the tests of every addon of this repository.

Prints Odoo's log, then a closing line ``odoo: N passed, N failed``. Exits non-zero when a test
fails, when the install logs an error, when a module is not installed afterwards (whatever the
exit code), or when no test ran at all. Runs the Odoo of the interpreter that runs it, 18.0 or
19.0: ``/path/to/venv/bin/python scripts/odoo_tests.py``.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

from odoo_env import (
    SHOP_MODULES,
    demo_options,
    free_port,
    odoo_command,
    repository_addons,
    wait_for_postgres,
)

RESULT = re.compile(r"(\d+) failed, (\d+) error\(s\) of (\d+) tests when loading database")
ERROR_LINE = re.compile(r"^\S+ \S+ \d+ (ERROR|CRITICAL) ")
ERROR_CONTEXT_LINES = 40
MAX_ERROR_BLOCKS = 10


def modules_not_installed(database, modules):
    """``(name, state)`` of each of ``modules`` that is not installed in ``database``, a
    module the database does not know at all included (state ``absent``)."""
    listed = subprocess.run(
        [
            "psql",
            "--dbname",
            database,
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            "--field-separator",
            " ",
            "--command",
            "SELECT name, state FROM ir_module_module",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    states = dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)
    return [
        (name, states.get(name, "absent")) for name in modules if states.get(name) != "installed"
    ]


def main():
    if not wait_for_postgres():
        print("odoo: PostgreSQL does not accept connections; start it first", flush=True)
        return 2
    database = f"metrika_test_{int(time.time())}_{os.getpid()}"
    addons = repository_addons()
    test_tags = sys.argv[1] if len(sys.argv) > 1 else ",".join(f"/{name}" for name in addons)
    command = odoo_command(
        database,
        "--init",
        ",".join((*addons, *SHOP_MODULES)),
        "--test-tags",
        test_tags,
        *demo_options(),
        "--stop-after-init",
        "--http-interface",
        "127.0.0.1",
        "--http-port",
        str(free_port()),
        "--log-level",
        "info",
        "--max-cron-threads",
        "0",
    )
    print(
        "odoo: installing",
        ", ".join((*addons, *SHOP_MODULES)),
        "on a fresh database",
        database,
        flush=True,
    )
    counts = {"errors": 0, "summary": None}
    # Each error line with the lines after it (a failing test's traceback), repeated at the end:
    # a CI report keeps only the tail of the log.
    error_blocks = []

    def read(stream):
        after_error = 0
        for line in stream:
            sys.stdout.write(line)
            if ERROR_LINE.match(line):
                counts["errors"] += 1
                error_blocks.append([])
                after_error = ERROR_CONTEXT_LINES
            if after_error and len(error_blocks) <= MAX_ERROR_BLOCKS:
                error_blocks[-1].append(line)
                after_error -= 1
            found = RESULT.search(line)
            if found:
                counts["summary"] = tuple(int(value) for value in found.groups())

    # Odoo runs in a process group of its own: a browser a tour left behind holds the output
    # pipe open, and is ended with the group once Odoo has exited, instead of hanging the run.
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
        reader.start()
        returncode = proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reader.join(timeout=60)
    errors, summary = counts["errors"], counts["summary"]
    not_installed = modules_not_installed(database, (*addons, *SHOP_MODULES))
    subprocess.run(["dropdb", "--if-exists", database], check=False)

    # Odoo exits 0 when it installs nothing: a module whose manifest the series refuses (a
    # version of another series, for one) is only logged as a warning and left `uninstallable`.
    # The modules' state in the database is what tells.
    if not_installed:
        print(
            "odoo: not installed: "
            + ", ".join(f"{name} ({state})" for name, state in not_installed),
            flush=True,
        )

    if summary is None:
        print(f"odoo: the run ended (exit {returncode}) without a test report", flush=True)
        return 1
    if not_installed:
        print("odoo: FAILED: a module of the run is not installed", flush=True)
        return 1
    failed, errored, total = summary
    not_passed = failed + errored
    print(f"odoo: {total - not_passed} passed, {not_passed} failed", flush=True)
    if total == 0:
        print("odoo: no test ran", flush=True)
        return 1
    # Odoo's runner reports failing tests in its exit code; errors logged outside a test
    # (a view that does not validate, a failing data file) only show in the log.
    if returncode != 0 or not_passed or errors:
        if error_blocks:
            print("odoo: the error lines of the log, each with what follows it:", flush=True)
            for block in error_blocks[:MAX_ERROR_BLOCKS]:
                sys.stdout.write("".join(block))
        print(f"odoo: FAILED (exit {returncode}, {errors} error lines in the log)", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
