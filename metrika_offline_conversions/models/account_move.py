from odoo import models

PAID_STATES = ("paid", "in_payment")


class AccountMove(models.Model):
    _inherit = "account.move"

    def _compute_field_value(self, field):
        # payment_state is recomputed by the ORM, never written: its transition to paid is the
        # one event every payment route shares (register-payment wizard, reconciliation,
        # online payments with invoices).
        if field.name != "payment_state":
            return super()._compute_field_value(field)
        before = {move.id: move.payment_state for move in self if isinstance(move.id, int)}
        result = super()._compute_field_value(field)
        newly_paid = self.filtered(
            lambda move: (
                isinstance(move.id, int)
                and move.move_type == "out_invoice"
                and move.payment_state in PAID_STATES
                and before.get(move.id) not in PAID_STATES
            )
        )
        if newly_paid:
            # Whoever pays (a billing user may not read sale order lines) the orders are found.
            newly_paid.sudo().line_ids.sale_line_ids.order_id._metrika_enqueue_if_paid()
        return result
