"""OCA's ``oca-checks-odoo-module``, run as for the newest Odoo series the addons support.

That checker takes the series from the manifest's version, and some checks only run from a
given series on (``t-esc`` deprecated from 15.0, the old chatter from 18.0, ``res.groups``'
``category_id`` removed in 19.0...). The manifests have a version without a series prefix,
"1.1.0", the one form both 18.0 and 19.0 accept (.pylintrc says why): read as it is, it would
pass for an addon older than 15.0, and those checks would be skipped. One source serves every
supported series, so its XML must pass the checks of the newest one.

Usage (the pre-commit hook's entry): ``python scripts/oca_checks_odoo_module.py [files...]``.
"""

import sys

from oca_pre_commit_hooks import cli, utils

# The newest series of .pylintrc's valid-odoo-versions.
NEWEST_SERIES = "19.0"

_manifest_version = utils.manifest_version


def manifest_version(manifest_path):
    """The manifest's version, with the newest series before a version that has none."""
    version = _manifest_version(manifest_path)
    if version is not None and len(version.release) <= 3:
        return utils.str2version(f"{NEWEST_SERIES}.{version}")
    return version


utils.manifest_version = manifest_version

if __name__ == "__main__":
    sys.exit(cli.main())
