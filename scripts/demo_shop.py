"""A small furniture shop's data, pointed at the local Metrica stand-in: shared by the sandbox
(scripts/sandbox.py) and the screenshots (scripts/screenshots.py).

Runs inside Odoo (``env``): ``open_env(database)`` gives one on a database where the addon is
installed.
"""

import contextlib
from datetime import timedelta

from odoo_env import addons_path
from stand_in_runner import TOKEN, load_stand_in

# Each module by name: 19.0's ``odoo`` is a namespace package that imports nothing.
import odoo.modules.registry
import odoo.tools
from odoo import SUPERUSER_ID, api, fields
from odoo.tools import SQL


@contextlib.contextmanager
def open_env(database):
    """A superuser environment on ``database``; the caller commits."""
    odoo.tools.config.parse_config(
        ["--database", database, "--addons-path", addons_path(), "--log-level", "warn"]
    )
    registry = odoo.modules.registry.Registry(database)
    with registry.cursor() as cr:
        yield api.Environment(cr, SUPERUSER_ID, {})


def configure_company(env, stand_in, **settings):
    """The company becomes the shop, in roubles, connected to ``stand_in``; ``settings`` are
    more of its Metrica settings (sending is on unless they say otherwise)."""
    company = env.company
    rouble = env.ref("base.RUB")
    rouble.active = True
    company.write(
        {"name": "Divan Furniture", "country_id": env.ref("base.ru").id, "currency_id": rouble.id}
    )
    env["product.pricelist"].search([]).write({"currency_id": rouble.id})
    company.sudo().write(
        {
            "metrika_enabled": True,
            "metrika_counter_id": str(load_stand_in().DEFAULT_COUNTER_ID),
            "metrika_token": TOKEN,
            "metrika_api_url": stand_in.url,
            "metrika_send_leads": True,
            **settings,
        }
    )
    # What the administrator's "Test connection" does: reads the counter's name and zone.
    env["res.config.settings"].create({}).action_metrika_test_connection()
    return company


class Shop:
    """The shop's customers and products, and the ways its sales are made."""

    def __init__(self, env):
        self.env = env
        self.salesperson = env.ref("base.user_admin")
        Partner = env["res.partner"]
        self.anna = Partner.create(
            {
                "name": "Anna Smirnova",
                "email": "anna.smirnova@example.ru",
                "phone": "+7 912 555-0142",
            }
        )
        self.oleg = Partner.create(
            {"name": "Oleg Kuznetsov", "email": "oleg@example.ru", "phone": "+7 903 555-0177"}
        )
        self.maria = Partner.create(
            {"name": "Maria Volkova", "email": "m.volkova@example.ru", "phone": "+7 921 555-0193"}
        )
        self.walk_in = Partner.create({"name": "Walk-in customer"})
        Product = env["product.product"]
        self.sofa = Product.create(
            {"name": "Corner sofa Oslo", "list_price": 84900.0, "type": "consu"}
        )
        self.chair = Product.create(
            {"name": "Armchair Bergen", "list_price": 23500.0, "type": "consu"}
        )
        self.table = Product.create(
            {"name": "Coffee table Malmo", "list_price": 12900.0, "type": "consu"}
        )

    def lead(self, name, partner, revenue, **values):
        return self.env["crm.lead"].create(
            {
                "name": name,
                "type": "opportunity",
                "partner_id": partner.id,
                "user_id": self.salesperson.id,
                "expected_revenue": revenue,
                **values,
            }
        )

    def order(self, partner, product, quantity=1, **values):
        return self.env["sale.order"].create(
            {
                "partner_id": partner.id,
                "user_id": self.salesperson.id,
                "order_line": [(0, 0, {"product_id": product.id, "product_uom_qty": quantity})],
                **values,
            }
        )

    def pay(self, order):
        """Invoice the order and register its payment in full, as the accountant would."""
        invoice = order._create_invoices()
        invoice.action_post()
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create({})._create_payments()
        return invoice

    def backdate(self, record, days, *columns):
        """What happened ``days`` ago: ``record``'s creation and the date ``columns`` named."""
        when = fields.Datetime.now() - timedelta(days=days)
        record.flush_recordset()
        for column in ("create_date", *columns):
            self.env.cr.execute(
                SQL(
                    "UPDATE %s SET %s = %s WHERE id = %s",
                    SQL.identifier(record._table),
                    SQL.identifier(column),
                    when,
                    record.id,
                )
            )
        record.invalidate_recordset()
        return when
