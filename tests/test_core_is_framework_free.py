"""The core must work without Odoo: these tests fail as soon as any of it imports odoo."""

import ast
import importlib
import pathlib
import pkgutil
import sys

import metrika_core

CORE_DIR = pathlib.Path(metrika_core.__file__).resolve().parent


def _imported_names(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_odoo_is_blocked_during_this_suite():
    assert "odoo" in sys.modules and sys.modules["odoo"] is None
    try:
        import odoo  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - the guard itself is broken
        raise AssertionError("import odoo succeeded although conftest blocks it")


def test_every_core_module_imports_without_odoo():
    names = [info.name for info in pkgutil.iter_modules([str(CORE_DIR)])]
    assert "identifiers" in names
    for name in names:
        module = importlib.import_module(f"metrika_core.{name}")
        assert module.__name__ == f"metrika_core.{name}"


def test_no_core_source_names_odoo():
    offenders = {
        str(path.relative_to(CORE_DIR)): name
        for path in CORE_DIR.rglob("*.py")
        for name in _imported_names(path)
        if name == "odoo" or name.startswith("odoo.")
    }
    assert offenders == {}


def _speaks_http(name):
    # urllib.parse only builds addresses (the OAuth authorize page's): it sends nothing.
    return name == "urllib.request" or name.split(".")[0] in {
        "requests",
        "urllib3",
        "http",
        "httpx",
    }


def test_one_module_speaks_http():
    # The one request path (transport.send) for the Metrica client and the Yandex OAuth client.
    importers = sorted(
        {
            str(path.relative_to(CORE_DIR))
            for path in CORE_DIR.rglob("*.py")
            for name in _imported_names(path)
            if _speaks_http(name)
        }
    )
    assert importers == ["transport.py"]
