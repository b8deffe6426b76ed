from . import metrika_capture
from . import odoo_compat
