"""Packaging for metrika_offline_conversions.

The Odoo addon folder and its bridge addons are packaged as they are, with their data files; the
framework-free core (``metrika_offline_conversions.metrika_core``) is packaged once, inside the
addon. Odoo itself is not a dependency: it is on no package index, and the addons are deployed
by putting their folders on Odoo's ``addons_path``. The core's own test suite imports the core
from the folder (tests/conftest.py), without Odoo. A wheel to deploy with pip, with the addons
under ``odoo/addons/`` as OCA's, is built per Odoo series by scripts/build_wheels.py.
"""

import ast
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).resolve().parent
ADDON = "metrika_offline_conversions"
PACKAGE_DATA = [
    "README.rst",
    "data/*",
    "i18n/*",
    "readme/*",
    "security/*",
    "static/description/*",
    "views/*",
]
MANIFEST = ast.literal_eval((HERE / ADDON / "__manifest__.py").read_text(encoding="utf-8"))
# The bridge addons beside the main one (website, website_crm, website_sale), shipped with it.
BRIDGES = sorted(path.parent.name for path in HERE.glob(f"{ADDON}_*/__manifest__.py"))
BRIDGE_DATA = [
    "data/*",
    "i18n/*",
    "readme/*",
    "static/description/*",
    "static/src/**/*",
    "static/tests/**/*",
    "views/*",
]

setup(
    name="metrika-offline-conversions",
    # The manifest's "x.y.z" is the one version of the project (without a series: Odoo 18.0
    # and 19.0 each put their own before it).
    version=MANIFEST["version"],
    description=MANIFEST["summary"],
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="LGPL-3.0-only",
    python_requires=">=3.10",
    # The core once, inside the addon: a second copy under its own name would make two
    # distinct MetrikaError classes.
    packages=[
        ADDON,
        *(f"{ADDON}.{p}" for p in find_packages(ADDON)),
        *BRIDGES,
        *(f"{bridge}.{p}" for bridge in BRIDGES for p in find_packages(bridge)),
    ],
    # Every pattern matches files (tests/test_packaging.py checks the main addon's).
    package_data={
        ADDON: PACKAGE_DATA,
        **{
            bridge: [pattern for pattern in BRIDGE_DATA if any((HERE / bridge).glob(pattern))]
            for bridge in BRIDGES
        },
    },
    # What metrika_core imports: requests (client.py), phonenumbers (identifiers.py).
    install_requires=["requests", "phonenumbers"],
    extras_require={
        # Every third-party package the core suite (tests/) imports or runs, so that README's
        # install command is all a fresh virtualenv needs (.ci/run installs it into one):
        # hypothesis: tests/test_identifiers.py; tzdata: the time zones of tests/test_formats.py
        # where the system has none; docutils: tests/test_addon_readme.py checks the READMEs;
        # markdown: scripts/gen_addon_readme.py, which that test loads (pinned: its HTML is
        # checked in, tests compare it); setuptools, wheel: tests/test_packaging.py builds the
        # wheel without build isolation. pytest-odoo, websocket-client: the Odoo-layer tests
        # (Odoo drives the headless browser of its tours through websocket-client).
        "test": [
            "pytest",
            "pytest-odoo>=2.2",
            "hypothesis",
            "tzdata",
            "docutils",
            "markdown==3.11.3",
            "setuptools",
            "wheel",
            "websocket-client",
        ],
    },
    classifiers=[
        "Framework :: Odoo",
        "Framework :: Odoo :: 18.0",
        "Framework :: Odoo :: 19.0",
        "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)",
        "Programming Language :: Python :: 3",
    ],
)
