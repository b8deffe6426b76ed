"""setup.py packages the addon once, with data files that exist."""

import ast
import pathlib
import subprocess
import sys
import zipfile

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
