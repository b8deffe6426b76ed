from odoo import models


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"

    def _post_process(self):
        # Orders paid online without an invoice never see an invoice become paid.
        result = super()._post_process()
        done = self.filtered(lambda tx: tx.state == "done" and tx.operation != "validation")
        done.sudo().sale_order_ids._metrika_enqueue_if_paid()
        return result
