"""Install the built wheel into an Odoo environment and have Odoo install the addon from it.

    python3 scripts/check_wheel_install.py --python /tmp/venv19/bin/python [--shop]

The proof of ``pip install`` the OCA way: with ``--python`` an interpreter of a virtualenv where
Odoo 18.0 or 19.0 imports (this script never builds nor fetches Odoo), it

1. builds the wheel of that Odoo's series (``scripts/build_wheels.py``) and ``pip install``s it
   there;
2. creates a database and runs ``python -m odoo -i metrika_offline_conversions
   --stop-after-init`` with an ``addons_path`` of Odoo's own folders only (never this
   repository), from a temporary folder;
3. reads the modules' state in the database: every addon asked for must be ``installed``
   (Odoo exits 0 when a module is uninstallable, so its exit code proves nothing);
4. drops the database.

``--shop`` installs ``website_sale`` and ``website_crm`` too and requires the three bridge
addons to have installed themselves from the same wheel. Where Odoo in that environment is a
source tree on the path (a ``.pth`` file) rather than an installed distribution, pip cannot see
the wheel's requirement on ``odoo``: the wheel is then installed with ``--no-deps`` and its
other requirements by name, and the script says so.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import build_wheels  # noqa: E402 - this folder on the path first
from odoo_env import free_port  # noqa: E402

SHOP_MODULES = ("website_sale", "website_crm")


def probe(python, code):
    """What ``code`` prints in the target interpreter (run outside the repository)."""
    return subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True, cwd=tempfile.gettempdir()
    ).stdout.strip()


def wheel_requirements(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode()
    return [
        line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Requires-Dist: ")
    ]


def install_wheel(python, wheel):
    odoo_distribution = probe(
        python,
        "import importlib.metadata as m\n"
        "try: print(m.version('odoo'))\n"
        "except m.PackageNotFoundError: print('')",
    )
    command = [python, "-m", "pip", "install", "--force-reinstall", "-q"]
    if odoo_distribution:
        print(
            "odoo %s is an installed distribution: pip resolves the wheel's requirements"
            % odoo_distribution
        )
        subprocess.run([*command, str(wheel)], check=True)
        return
    others = [r for r in wheel_requirements(wheel) if not r.startswith("odoo")]
    print(
        "odoo is on the path but not an installed distribution: the wheel goes in with "
        "--no-deps, then its other requirements: %s" % ", ".join(others)
    )
    subprocess.run([*command, "--no-deps", str(wheel)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *others], check=True)


def module_states(database, names):
    done = subprocess.run(
        [
            "psql",
            "-X",
            "-At",
            "-d",
            database,
            "-c",
            "SELECT name, state FROM ir_module_module WHERE name IN (%s) ORDER BY name"
            % ",".join("'%s'" % name for name in names),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("|", 1) for line in done.stdout.split())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="a virtualenv's python where Odoo imports")
    parser.add_argument("--shop", action="store_true", help="website_sale, website_crm too")
    parser.add_argument("--keep-database", action="store_true", help="do not drop it")
    args = parser.parse_args()
    python = args.python
    if probe(python, "import sys; print(sys.prefix != sys.base_prefix)") != "True":
        parser.error("%s is not a virtualenv's interpreter: this script installs into it" % python)
    series = probe(python, "import odoo.release as r; print(r.serie)")
    # Odoo's own folder (release.py's): once the wheel is in, 19.0's namespace package ``odoo``
    # also spans the wheel's folder in site-packages.
    odoo_dir = pathlib.Path(
        probe(python, "import odoo.release as r, os; print(os.path.dirname(r.__file__))")
    )
    print("Odoo %s at %s, interpreter %s" % (series, odoo_dir, python))

    with tempfile.TemporaryDirectory(prefix="metrika_wheel_") as workdir:
        wheel = build_wheels.build(series, pathlib.Path(workdir))
        print("built", wheel.name)
        install_wheel(python, wheel)
        where = probe(
            python,
            # Where Python finds the package, without running it (it needs a configured Odoo).
            "import importlib.util as u, os; "
            "print(os.path.dirname(u.find_spec('odoo.addons.%s').origin))" % build_wheels.ADDON,
        )
        print("odoo.addons.%s imports from %s" % (build_wheels.ADDON, where))
        if pathlib.Path(where).resolve().is_relative_to(build_wheels.REPO):
            sys.exit("FAIL: the addon imports from the repository, not from the wheel")

        # Odoo's own addons only: the repository is on no path of this run.
        addons_path = [str(odoo_dir / "addons")]
        if (odoo_dir.parent / "addons").is_dir():
            addons_path.insert(0, str(odoo_dir.parent / "addons"))
        modules = [build_wheels.ADDON, *(SHOP_MODULES if args.shop else ())]
        database = "wheel_check_%d_%d" % (os.getpid(), int(time.time()))
        subprocess.run(["createdb", database], check=True)
        try:
            command = [
                python,
                "-m",
                "odoo",
                "-d",
                database,
                "--addons-path",
                ",".join(addons_path),
                "-i",
                ",".join(modules),
                "--stop-after-init",
                "--http-port",
                str(free_port()),
                "--log-level",
                "warn",
            ]
            if int(series.split(".")[0]) < 19:
                command += ["--without-demo", "all"]
            print("$", " ".join(command))
            done = subprocess.run(command, cwd=workdir, check=False)
            print("odoo exited with", done.returncode)
            expected = list(build_wheels.repository_addons()) if args.shop else [build_wheels.ADDON]
            states = module_states(database, expected)
            for name in expected:
                print("%s: %s" % (name, states.get(name, "absent")))
            if done.returncode or any(states.get(name) != "installed" for name in expected):
                sys.exit("FAIL: not every addon is installed")
            print("OK: installed from the %s wheel, without the repository on addons_path" % series)
        finally:
            if args.keep_database:
                print("database kept:", database)
            else:
                subprocess.run(["dropdb", "--if-exists", "--force", database], check=False)


if __name__ == "__main__":
    main()
