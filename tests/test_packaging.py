"""setup.py packages the addon once, with data files that exist (the development install);
scripts/build_wheels.py builds a wheel per Odoo series with the addons under odoo/addons/."""

import ast
import base64
import csv
import hashlib
import io
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
ADDON = REPO / "metrika_offline_conversions"


def _setup_assignment(name):
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py assigns no {name}")


def test_every_package_data_pattern_matches_files():
    for pattern in _setup_assignment("PACKAGE_DATA"):
        assert any(path.is_file() for path in ADDON.glob(pattern)), pattern


def test_every_data_file_of_the_manifest_is_packaged():
    manifest = ast.literal_eval((ADDON / "__manifest__.py").read_text(encoding="utf-8"))
    patterns = _setup_assignment("PACKAGE_DATA")
    for data_file in manifest["data"]:
        assert any(pathlib.PurePath(data_file).match(pattern) for pattern in patterns), data_file


def test_the_wheel_holds_the_core_once_and_the_data_files(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name in names if name.endswith("metrika_core/errors.py")] == [
        "metrika_offline_conversions/metrika_core/errors.py"
    ]
    assert "metrika_offline_conversions/i18n/ru.po" in names
    assert "metrika_offline_conversions/data/ir_cron_data.xml" in names


# The wheels of scripts/build_wheels.py: the addons under odoo/addons/, one wheel per series.
sys.path.insert(0, str(REPO / "scripts"))
import build_wheels  # noqa: E402 - scripts/ on the path first

SERIES_PYTHONS = {
    "18.0": ("ODOO18_PYTHON", "python3"),
    "19.0": ("ODOO19_PYTHON", "/work/venv19/bin/python"),
}


def _wheel(series, folder):
    path = build_wheels.build(series, folder)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
        record = archive.read(metadata_name.replace("METADATA", "RECORD")).decode()
        contents = {name: archive.read(name) for name in names}
    headers = metadata.split("\n\n", 1)[0].splitlines()
    return path, contents, [tuple(line.split(": ", 1)) for line in headers], record


@pytest.mark.parametrize("series", build_wheels.SERIES)
def test_the_series_wheel_says_its_series(series, tmp_path):
    path, _contents, headers, _record = _wheel(series, tmp_path)
    version = ast.literal_eval((ADDON / "__manifest__.py").read_text(encoding="utf-8"))["version"]
    other = next(s for s in build_wheels.SERIES if s != series)
    assert (
        path.name == f"odoo_addon_metrika_offline_conversions-{series}.{version}-py3-none-any.whl"
    )
    assert ("Name", "odoo-addon-metrika_offline_conversions") in headers
    assert ("Version", f"{series}.{version}") in headers
    assert ("Classifier", f"Framework :: Odoo :: {series}") in headers
    assert ("Classifier", f"Framework :: Odoo :: {other}") not in headers
    requirements = sorted(value for key, value in headers if key == "Requires-Dist")
    assert requirements == sorted([f"odoo=={series}.*", "phonenumbers", "requests"])


@pytest.mark.parametrize("series", build_wheels.SERIES)
def test_the_series_wheel_holds_every_addon_under_odoo_addons(series, tmp_path):
    _path, contents, _headers, record = _wheel(series, tmp_path)
    addons = sorted(
        path.parent.name for path in REPO.glob("metrika_offline_conversions*/__manifest__.py")
    )
    assert len(addons) == 4
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--", *addons],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    packed = sorted(name for name in contents if not name.split("/")[0].endswith(".dist-info"))
    # The addons' files under git, each under odoo/addons/, and nothing else: no odoo/__init__.py
    # nor odoo/addons/__init__.py (Odoo's own), no second copy of the core, no byte code.
    assert packed == sorted("odoo/addons/" + name for name in tracked)
    for addon in addons:
        manifest = ast.literal_eval((REPO / addon / "__manifest__.py").read_text(encoding="utf-8"))
        for data_file in manifest.get("data", []):
            assert f"odoo/addons/{addon}/{data_file}" in contents, data_file
        assert (
            contents[f"odoo/addons/{addon}/__init__.py"]
            == (REPO / addon / "__init__.py").read_bytes()
        )
    # RECORD names every other file with its sha256 and size (what pip checks on install).
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(record))}
    assert set(rows) == set(contents)
    for name, data in contents.items():
        if name.endswith("/RECORD"):
            assert rows[name] == ["", ""]
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert rows[name] == [f"sha256={digest}", str(len(data))], name


def test_a_build_of_the_same_files_is_the_same_bytes(tmp_path):
    first = build_wheels.build("19.0", tmp_path / "a").read_bytes()
    assert build_wheels.build("19.0", tmp_path / "b").read_bytes() == first


@pytest.mark.parametrize("series", build_wheels.SERIES)
def test_odoo_imports_the_installed_wheel_as_odoo_addons(series, tmp_path):
    """The wheel installed into a folder on the path of an interpreter where that Odoo series
    imports: ``odoo.addons.<addon>`` resolves there (18.0 extends ``odoo.addons``'s path with
    pkgutil; 19.0's is a namespace package). Skipped where that series is not installed."""
    variable, default = SERIES_PYTHONS[series]
    python = os.environ.get(variable) or default
    probe = subprocess.run(
        [python, "-c", "import odoo.release as r; print(r.serie)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode or probe.stdout.strip() != series:
        pytest.skip(f"{python} imports no Odoo {series} (set {variable})")
    wheel = build_wheels.build(series, tmp_path / "dist")
    target = tmp_path / "site"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    found = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u\n"
            "for name in %r:\n"
            "    print(u.find_spec('odoo.addons.' + name).origin)"
            % (build_wheels.repository_addons(),),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    ).stdout.split()
    assert found == [
        str(target / "odoo" / "addons" / name / "__init__.py")
        for name in build_wheels.repository_addons()
    ]
