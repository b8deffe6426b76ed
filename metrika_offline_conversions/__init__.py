from . import controllers
from . import models
from . import tools


def post_init_hook(env):
    """The manager group's place in the user form, and the administrators in it, in the form of
    the series (tools/odoo_compat.py)."""
    tools.odoo_compat.set_group_privilege(
        env.ref("metrika_offline_conversions.group_metrika_manager"),
        env.ref("metrika_offline_conversions.module_category_metrika"),
        env.ref("base.user_root") | env.ref("base.user_admin"),
    )
