"""Where the Odoo install is, and what the addon needs to run in it.

Shared by the test runner and the server launcher so both start Odoo the same way.
"""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
ADDON = "metrika_offline_conversions"
# What a real shop has installed beside the addon: its tests must pass there too (a module such
# as ``rating``, which website_sale brings, changes what the addon's views and texts look like).
SHOP_MODULES = ("website_sale", "website_crm")


def repository_addons():
    """Every addon of this repository: the main one and the bridges beside it, by folder name."""
    return sorted(
        path.parent.name
        for path in REPO.glob("*/__manifest__.py")
        if path.parent.name.startswith(ADDON)
    )


def odoo_available():
    """True when this interpreter can import odoo (a source tree or an installed package)."""
    probe = subprocess.run([sys.executable, "-c", "import odoo"], capture_output=True, check=False)
    return probe.returncode == 0


def _odoo_probe(code):
    """What ``code`` prints in this interpreter after ``import odoo``."""
    return subprocess.run(
        [sys.executable, "-c", f"import odoo; {code}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def odoo_series():
    """The major version of the Odoo this interpreter imports: 18, 19, ..."""
    return int(_odoo_probe("import odoo.release as r; print(r.version_info[0])"))


def demo_options():
    """No demo data: 18.0 loads it unless told ``--without-demo all``; since 19.0 none is the
    default, and that option is deprecated (it logs a warning)."""
    return ["--without-demo", "all"] if odoo_series() < 19 else []


def addons_path():
    """Odoo's own addons plus this repository, comma separated, as ``--addons-path`` wants."""
    # The odoo package's folder: in 19.0 ``odoo`` is a namespace package (no __init__.py), so
    # ``odoo.__file__`` is None there; ``__path__`` holds the folder on both series.
    odoo_dir = pathlib.Path(_odoo_probe("print(list(odoo.__path__)[0])"))
    paths = []
    extra = os.environ.get("ODOO_ADDONS_PATH")
    if extra:
        paths.append(extra)
    # A source checkout keeps most addons beside the odoo package; a packaged Odoo keeps them in it.
    if (odoo_dir.parent / "addons").is_dir():
        paths.append(str(odoo_dir.parent / "addons"))
    paths.append(str(odoo_dir / "addons"))
    paths.append(str(REPO))
    return ",".join(paths)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_postgres(seconds=30):
    """Wait until PostgreSQL accepts connections; False when it never does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if shutil.which("pg_isready") is None:
            return True
        if subprocess.run(["pg_isready", "-q"], check=False).returncode == 0:
            return True
        time.sleep(0.5)
    return False


def odoo_command(database, *args):
    return [
        sys.executable,
        "-m",
        "odoo",
        "--database",
        database,
        "--addons-path",
        addons_path(),
        *args,
    ]


def install_command(database, modules):
    """Odoo installing ``modules`` (names) on a fresh ``database``, quietly, then stopping."""
    return odoo_command(
        database,
        "--init",
        ",".join(modules),
        *demo_options(),
        "--stop-after-init",
        "--http-port",
        str(free_port()),
        "--max-cron-threads",
        "0",
        "--log-level",
        "warn",
    )
