"""What differs between the Odoo series the addons run on (18.0 and 19.0), in one place.

The addons are one source for both series. Where the two differ and no form is valid on both,
the code calls a helper of this module, which looks for the feature itself (a field, a class,
a method) instead of testing a version number; nowhere else does the code ask which series it
runs on. XML data cannot branch (the manifest's data list is fixed), so it only uses forms
valid on both, and what differs is done here from Python (``set_group_privilege``).
"""

import importlib
import inspect
import threading

from odoo import api, models, release
from odoo.modules import module as odoo_module
from odoo.tools import sql

# 19.0 declares SQL constraints as ``models.Constraint`` attributes and ignores
# ``_sql_constraints`` (with only a warning, so the constraint is silently never created).
Constraint = getattr(models, "Constraint", None)

# A cursor's transaction (tests give one to a cursor of another thread): 18.0 exports it from
# odoo.api, 19.0 only from odoo.orm.environments.
Transaction = getattr(api, "Transaction", None) or (
    importlib.import_module("odoo.orm.environments").Transaction
)


def sql_constraints(*constraints):
    """Class decorator declaring the model's SQL constraints, ``(name, definition, message)``
    each, in the form of the series: ``models.Constraint`` attributes on 19.0,
    ``_sql_constraints`` on 18.0. Both name the database constraint ``<table>_<name>``, so a
    database keeps its constraints from one series to the next."""

    def decorate(cls):
        if Constraint is None:
            cls._sql_constraints = [*cls.__dict__.get("_sql_constraints", ()), *constraints]
            return cls
        for name, definition, message in constraints:
            attribute = f"_{name}"
            constraint = Constraint(definition, message)
            setattr(cls, attribute, constraint)
            # What the class statement does for an attribute: register it on the definition.
            constraint.__set_name__(cls, attribute)
        return cls

    return decorate


def field_paths(model, paths):
    """The ``paths`` ("field" or "field.field") whose every field exists, from ``model`` on:
    19.0 removed ``mobile`` from crm.lead and res.partner, for one."""
    kept = []
    for path in paths:
        current = model
        for name in path.split("."):
            field = current._fields.get(name)
            if field is None:
                break
            current = current.env[field.comodel_name] if field.relational else current
        else:
            kept.append(path)
    return kept


def field_values(record, names):
    """The values of those of ``names`` that ``record`` has as fields, in that order."""
    return [record[name] for name in names if name in record._fields]


def group_users(group):
    """The users of a ``res.groups``: ``users`` on 18.0, ``user_ids`` since 19.0."""
    return group.user_ids if "user_ids" in group._fields else group.users


def user_groups_field(env):
    """The name of a user's groups field: ``groups_id`` on 18.0, ``group_ids`` since 19.0."""
    return "group_ids" if "group_ids" in env["res.users"]._fields else "groups_id"


def set_group_privilege(group, category, users):
    """Show ``group`` under ``category`` in the user form, and give it ``users``.

    18.0 puts a group in an application category (``res.groups.category_id``); 19.0 puts it
    under a privilege (``res.groups.privilege``) of that category. The record of the privilege
    belongs to the group's module (``<group xmlid>_privilege``), so it goes with the module.
    """
    values = {}
    if "privilege_id" in group._fields:
        module, name = group.get_external_id()[group.id].split(".", 1)
        privilege = group.env["res.groups.privilege"]._load_records(
            [
                {
                    "xml_id": f"{module}.{name}_privilege",
                    "values": {"name": category.name, "category_id": category.id},
                    "noupdate": True,
                }
            ]
        )
        values["privilege_id"] = privilege.id
    else:
        values["category_id"] = category.id
    values["user_ids" if "user_ids" in group._fields else "users"] = [
        (4, user.id) for user in users
    ]
    group.write(values)


def test_owns_transaction(cr):
    """True when ``cr`` is the transaction of the Odoo test that is running: the test commits
    or rolls it back, code under test must not.

    18.0 marks the thread that runs the tests (``testing``). 19.0 dropped that mark: it names
    the running test process-wide (``odoo.modules.module.current_test``) and forbids a commit of
    that test's own cursor only, so the threads of a concurrency test, each with a cursor of its
    own, still commit.
    """
    if getattr(threading.current_thread(), "testing", False):
        return True
    test_cr = getattr(odoo_module.current_test or None, "cr", None)
    return test_cr is not None and cr is test_cr


def report_cron_progress(env, done, remaining):
    """Tell Odoo's scheduler what one call of a cron job did: ``done`` records, ``remaining``
    still due. It calls the job again at once while something remains.

    18.0 has ``ir.cron._notify_progress``. 19.0 deprecates it for ``_commit_progress``, which
    also commits; a test's transaction is not for it to commit, so there the progress is
    written as ``_notify_progress`` writes it.
    """
    cron = env["ir.cron"]
    if not hasattr(cron, "_commit_progress"):
        cron._notify_progress(done=done, remaining=remaining)
        return
    if not test_owns_transaction(env.cr):
        cron._commit_progress(done, remaining=remaining)
        return
    progress_id = env.context.get("ir_cron_progress_id")
    if progress_id:
        env["ir.cron.progress"].sudo().browse(progress_id).write(
            {"done": done, "remaining": remaining}
        )


def series():
    """The running series' number (18, 19). Only for what is per series by nature and has no
    feature to look for: a browser tour's steps, the terms a series exports for translation."""
    return release.version_info[0]


def tour_variant(name):
    """The variant of the browser tour ``name`` written for the running series: ``name`` for
    18.0, ``name_19`` from 19.0 on. A tour step that leaves the page must say so on 19.0
    (``expectUnloadPage``), a key 18.0 refuses: such a tour is registered once per series, its
    JavaScript cannot tell which series loaded it, so the test picks the variant."""
    return name if series() < 19 else f"{name}_19"


def create_unique_index(cr, name, table, expressions):
    """Create the unique index ``name`` on ``table`` unless it exists: 19.0 deprecates
    ``create_unique_index`` for ``create_index(unique=True)``, which 18.0 does not have."""
    if "unique" in inspect.signature(sql.create_index).parameters:
        sql.create_index(cr, name, table, expressions, unique=True)
    else:
        sql.create_unique_index(cr, name, table, expressions)
