"""Packaging for metrika_offline_conversions.

The Odoo addon folder is packaged as is, with its data files and its framework-free core
(``metrika_offline_conversions.metrika_core``), once. Odoo itself is not a dependency: it is on
no package index, and the addon is deployed by putting this folder on Odoo's ``addons_path``.
The core's own test suite imports it from the folder (tests/conftest.py), without Odoo.
"""

import ast
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).resolve().parent
ADDON = "metrika_offline_conversions"
PACKAGE_DATA = ["data/*", "i18n/*", "security/*", "views/*"]
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
    # The core once, inside the addon: a second copy under its own name would make two
    # distinct MetrikaError classes.
    packages=[ADDON, *(f"{ADDON}.{p}" for p in find_packages(ADDON))],
    # Every pattern matches files of the addon (tests/test_packaging.py checks it).
    package_data={ADDON: PACKAGE_DATA},
    install_requires=["requests", "phonenumbers"],
    extras_require={
        "test": ["pytest", "pytest-odoo>=2.2", "hypothesis", "tzdata", "wheel"],
    },
    classifiers=[
        "Framework :: Odoo",
        "Framework :: Odoo :: 18.0",
        "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)",
        "Programming Language :: Python :: 3",
    ],
)
