"""Packaging for metrika_offline_conversions.

The Odoo addon folder is packaged as is (with its data files), and its framework-free core is
also installed under its own name, ``metrika_core``, so it can be used and tested without Odoo.
Odoo itself is not a dependency: it is on no package index, and the addon is deployed by putting
this folder on Odoo's ``addons_path``.
"""

import ast
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).resolve().parent
ADDON = "metrika_offline_conversions"
MANIFEST = ast.literal_eval((HERE / ADDON / "__manifest__.py").read_text(encoding="utf-8"))

setup(
    name="metrika-offline-conversions",
    # The manifest's "18.0.x.y.z" is the one version of the project.
    version=MANIFEST["version"],
    description=MANIFEST["summary"],
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="LGPL-3.0-only",
    python_requires=">=3.10",
    packages=[ADDON, *(f"{ADDON}.{p}" for p in find_packages(ADDON)), "metrika_core"],
    package_dir={"metrika_core": f"{ADDON}/metrika_core"},
    package_data={
        ADDON: [
            "*.rst",
            "data/*",
            "i18n/*",
            "readme/*",
            "security/*",
            "static/description/*",
            "static/src/**/*",
            "views/*",
            "wizards/*.xml",
        ],
    },
    install_requires=["requests", "phonenumbers"],
    extras_require={
        # markdown: scripts/gen_addon_readme.py (pinned: its HTML is checked in, tests compare it)
        "test": ["pytest", "pytest-odoo>=2.2", "hypothesis", "tzdata", "markdown==3.11.3"],
    },
    classifiers=[
        "Framework :: Odoo",
        "Framework :: Odoo :: 18.0",
        "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)",
        "Programming Language :: Python :: 3",
    ],
)
