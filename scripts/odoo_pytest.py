"""Run the Odoo-layer tests under pytest with the pytest-odoo plugin.

pytest-odoo runs tests against a database where the addons are already installed, so this
installs every addon of the repository beside the shop modules on a fresh database (as
scripts/odoo_tests.py does for Odoo's own runner), runs pytest on their tests folders with
pytest-odoo.ini, and drops the database. The same tests run, and pass, under both runners.

Usage: ``python3 scripts/odoo_pytest.py [--database NAME] [pytest arguments ...]``; with
``--database`` an existing database that has the addons installed is used and kept.
"""

import os
import subprocess
import sys
import time

from odoo_env import (
    REPO,
    SHOP_MODULES,
    addons_path,
    install_command,
    repository_addons,
    wait_for_postgres,
)


def install(database, addons):
    """Install ``addons`` on a new ``database``; True when Odoo reported no error."""
    modules = ",".join((*addons, *SHOP_MODULES))
    print(f"odoo-pytest: installing {modules} on a fresh database {database}", flush=True)
    command = install_command(database, (*addons, *SHOP_MODULES))
    return subprocess.run(command, check=False).returncode == 0


def pytest_command(database, addons, extra):
    return [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(REPO / "pytest-odoo.ini"),
        f"--odoo-database={database}",
        f"--odoo-addons-path={addons_path()}",
        # HttpCase tests (tours) need Odoo's HTTP server; pytest-odoo skips them without it.
        "--odoo-http",
        *extra,
        *(str(REPO / name / "tests") for name in addons if (REPO / name / "tests").is_dir()),
    ]


def main(argv):
    database = None
    if argv[:1] == ["--database"] and len(argv) > 1:
        database, argv = argv[1], argv[2:]
    if not wait_for_postgres():
        print("odoo-pytest: PostgreSQL does not accept connections; start it first", flush=True)
        return 2
    addons = repository_addons()
    keep = database is not None
    database = database or f"metrika_pytest_{int(time.time())}_{os.getpid()}"
    try:
        if not keep and not install(database, addons):
            print("odoo-pytest: the install failed", flush=True)
            return 1
        return subprocess.run(pytest_command(database, addons, argv), check=False).returncode
    finally:
        if not keep:
            subprocess.run(["dropdb", "--if-exists", database], check=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
