"""Build the addons' wheel for one Odoo series, the way OCA's ``odoo-addon-*`` wheels are laid out.

    python3 scripts/build_wheels.py --series 19.0 [--out dist]

One wheel per series holds the four addons of the repository under ``odoo/addons/<name>/``, so
that ``pip install`` makes them importable as ``odoo.addons.<name>`` and Odoo finds them without
an ``addons_path`` entry (18.0's ``odoo/addons/__init__.py`` extends its path with
``pkgutil.extend_path``; in 19.0 ``odoo.addons`` is a namespace package). The wheel ships no
``odoo/__init__.py`` nor ``odoo/addons/__init__.py``: those are Odoo's.

One wheel rather than one per addon: the bridge addons install themselves when ``website``,
``website_crm`` or ``website_sale`` is there (``auto_install``), which needs them on the path;
a wheel of the main addon alone would silently lose the website capture. So the wheel holds
what the repository folder holds when it is put on ``addons_path``, and is named after the
main addon: ``odoo-addon-metrika_offline_conversions``.

Each wheel says its series: the version is the series and the manifest's version
(``19.0.1.1.0``, as Odoo itself reads the unprefixed manifest version), the classifier
``Framework :: Odoo :: 19.0``, and a requirement on Odoo of that series only
(``odoo==19.0.*``, as OCA's whool writes it). Odoo's own addons (``sale_crm``, ``website``...)
are no requirement: they come with Odoo. The other requirements are the manifests' Python
``external_dependencies`` and what the core imports (``requests``).

Only the standard library: a wheel is a zip file with a ``.dist-info`` folder (PEP 427).
"""

import argparse
import ast
import base64
import csv
import hashlib
import io
import pathlib
import subprocess
import zipfile

REPO = pathlib.Path(__file__).resolve().parent.parent
ADDON = "metrika_offline_conversions"
DISTRIBUTION = "odoo-addon-" + ADDON
SERIES = ("18.0", "19.0")
# What the core (metrika_core/client.py) imports beside the manifests' external dependencies.
CORE_REQUIREMENTS = ("requests",)
# Outside a git checkout, files a build never ships: byte code and editor droppings.
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
# A fixed time for every zip entry, so that a build of the same files is the same bytes.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
GENERATOR = "metrika_offline_conversions scripts/build_wheels.py"


def read_manifest(addon):
    return ast.literal_eval((REPO / addon / "__manifest__.py").read_text(encoding="utf-8"))


def repository_addons():
    """The main addon and the bridges beside it, by folder name."""
    return sorted(
        path.parent.name
        for path in REPO.glob(ADDON + "*/__manifest__.py")
        if path.parent.name.startswith(ADDON)
    )


def addon_files(addon):
    """The addon's files, relative to the repository, in a stable order: those under git's
    control in a checkout (as OCA's whool packs them, so nothing untracked ships), else every
    file of the folder but byte code."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--", addon],
        capture_output=True,
        check=False,
    )
    if listed.returncode == 0 and listed.stdout:
        names = [name for name in listed.stdout.decode().split("\0") if name]
        return sorted(pathlib.PurePosixPath(name) for name in names if (REPO / name).is_file())
    return sorted(
        path.relative_to(REPO)
        for path in (REPO / addon).rglob("*")
        if path.is_file()
        and path.suffix not in SKIPPED_SUFFIXES
        and "__pycache__" not in path.parts
    )


def requirements(series):
    found = set(CORE_REQUIREMENTS)
    for addon in repository_addons():
        found.update(read_manifest(addon).get("external_dependencies", {}).get("python", []))
    # What whool (manifestoo-core) writes for an addon that needs Odoo's own addons.
    return [f"odoo=={series}.*", *sorted(found)]


def metadata(series, version):
    manifest = read_manifest(ADDON)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DISTRIBUTION}",
        f"Version: {version}",
        f"Summary: {manifest['summary']}",
        f"Author: {manifest['author']}",
        "License: LGPL-3",
        "Classifier: Programming Language :: Python",
        "Classifier: Framework :: Odoo",
        f"Classifier: Framework :: Odoo :: {series}",
        "Classifier: License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)",
        "Requires-Python: >=3.10",
        *(f"Requires-Dist: {requirement}" for requirement in requirements(series)),
        "Description-Content-Type: text/x-rst",
        "",
        (REPO / ADDON / "README.rst").read_text(encoding="utf-8"),
    ]
    return "\n".join(lines)


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return [name, f"sha256={digest}", str(len(data))]


def build(series, out):
    """Write the series' wheel into ``out``; return its path."""
    if series not in SERIES:
        raise ValueError(f"series {series!r}: one of {', '.join(SERIES)}")
    version = f"{series}.{read_manifest(ADDON)['version']}"
    # A wheel's file name spells the distribution with underscores (PEP 427).
    stem = f"{DISTRIBUTION.replace('-', '_')}-{version}"
    dist_info = f"{stem}.dist-info"
    out.mkdir(parents=True, exist_ok=True)
    wheel_path = out / f"{stem}-py3-none-any.whl"
    entries = []
    for addon in repository_addons():
        for relative in addon_files(addon):
            entries.append(("odoo/addons/" + relative.as_posix(), (REPO / relative).read_bytes()))
    entries.append((f"{dist_info}/METADATA", metadata(series, version).encode()))
    wheel_text = (
        f"Wheel-Version: 1.0\nGenerator: {GENERATOR}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    entries.append((f"{dist_info}/WHEEL", wheel_text.encode()))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel_path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
            writer.writerow(_record_line(name, data))
        # RECORD lists itself without a hash (PEP 376).
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        info = zipfile.ZipInfo(f"{dist_info}/RECORD", ZIP_TIME)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        wheel.writestr(info, record.getvalue())
    return wheel_path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", choices=SERIES, action="append", help="18.0 or 19.0 (both)")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "dist", help="folder (dist)")
    args = parser.parse_args()
    for series in args.series or SERIES:
        print(build(series, args.out.resolve()))


if __name__ == "__main__":
    main()
