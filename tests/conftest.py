"""Pytest set-up for the framework-free layer.

``odoo`` is made unimportable before anything else is loaded, so a module of ``metrika_core``
that imports Odoo fails this suite. The core is imported under its own name from the addon
folder, which is how the addon's own ``__init__`` (which needs Odoo) is kept out of the way.
"""

import pathlib
import sys

sys.modules["odoo"] = None

TESTS_DIR = pathlib.Path(__file__).resolve().parent
ADDON_DIR = TESTS_DIR.parent / "metrika_offline_conversions"
for path in (str(ADDON_DIR), str(TESTS_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)
