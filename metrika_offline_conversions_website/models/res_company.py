from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    metrika_website_tag = fields.Boolean(
        string="Insert the Metrica tag on the website",
        help="Adds the Yandex Metrica tag with the company's counter to every page of its "
        "websites. Leave it off when the site already has the tag.",
    )
