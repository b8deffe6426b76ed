"""A module's Russian catalogue (i18n/ru.po) against the terms Odoo exports from it.

One catalogue serves every supported series, and each series exports a few terms of its own
(19.0 adds "Display Name" and "ID" for every model a module extends, and the website-form
labels of crm.lead and res.partner). Such an entry says so in a translator comment,
``# Exported by Odoo 19.0 only``: on its series it must be exported, on another it must not
be, and it is not stale there. Every other entry must be exported by the series that runs.
"""

import re

import polib

from odoo.modules.module import get_module_path
from odoo.tools.translate import TranslationModuleReader

from odoo.addons.metrika_offline_conversions.tools import odoo_compat

SERIES_ONLY = re.compile(r"^Exported by Odoo (\d+)\.0 only\.?$", re.MULTILINE)
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%s|%d")


def catalogue(module):
    return polib.pofile(f"{get_module_path(module)}/i18n/ru.po")


def exported_terms(env, module):
    """What Odoo itself would export for translation from the installed ``module``."""
    return {
        source
        for _m, _t, _n, _r, source, _v, _c in TranslationModuleReader(env.cr, modules=[module])
    }


def series_only(entry):
    """The series an entry says it is exported by only (19), or None."""
    found = SERIES_ONLY.search(entry.tcomment or "")
    return int(found[1]) if found else None


def problems(env, module):
    """What is wrong with ``module``'s catalogue on the running series, by kind (empty lists
    when nothing is): terms without a translation, stale entries, and entries that say they
    are of one series only but are exported by another too."""
    po = catalogue(module)
    sources = exported_terms(env, module)
    series = odoo_compat.series()
    translated = {entry.msgid for entry in po if entry.msgstr and not entry.fuzzy}
    return sources, {
        "terms without a translation": sorted(sources - translated),
        "stale entries": sorted(
            entry.msgid
            for entry in po
            if entry.msgid not in sources and series_only(entry) in (None, series)
        ),
        "exported by this series too": sorted(
            entry.msgid
            for entry in po
            if entry.msgid in sources and series_only(entry) not in (None, series)
        ),
    }
