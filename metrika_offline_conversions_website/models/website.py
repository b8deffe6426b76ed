from odoo import models


class Website(models.Model):
    _inherit = "website"

    def _metrika_counter(self):
        """The counter whose tag the pages talk to, or False when Metrica is not set up."""
        self.ensure_one()
        company = self.company_id
        if company.metrika_counter_id:
            return company.metrika_counter_id.strip()
        return False
