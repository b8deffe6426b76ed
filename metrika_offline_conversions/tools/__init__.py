from . import metrika_capture
from . import odoo_compat
from . import metrika_dashboard
