from odoo import api, fields, models

from .. import const


class SaleOrder(models.Model):
    _name = "sale.order"
    _inherit = ["sale.order", "metrika.identifier.mixin"]
    _metrika_conversion_field = "sale_order_id"

    # A quotation made from (or later linked to) an opportunity takes its identifiers,
    # but never loses its own.
    metrika_client_id = fields.Char(
        compute="_compute_metrika_identifiers", store=True, readonly=False, precompute=True
    )
    metrika_yclid = fields.Char(
        compute="_compute_metrika_identifiers", store=True, readonly=False, precompute=True
    )
    metrika_conversion_ids = fields.One2many(
        "metrika.conversion", "sale_order_id", string="Metrica conversion log",
        groups="metrika_offline_conversions.group_metrika_manager",
    )

    @api.depends("opportunity_id.metrika_client_id", "opportunity_id.metrika_yclid")
    def _compute_metrika_identifiers(self):
        for order in self:
            lead = order.opportunity_id
            order.metrika_client_id = order.metrika_client_id or lead.metrika_client_id
            order.metrika_yclid = order.metrika_yclid or lead.metrika_yclid

    def _metrika_attribution_depends(self):
        return ["metrika_client_id", "partner_id.email", "partner_id.phone", "partner_id.mobile"]

    def _metrika_contact_values(self):
        partner = self.partner_id
        return [partner.email], [partner.mobile, partner.phone]

    def _metrika_sends(self, event, company):
        if event == const.EVENT_PAID:
            return company.metrika_send_paid
        if event == const.EVENT_CANCELLED:
            return company.metrika_send_cancelled
        return True

    def _metrika_order_reference(self):
        lead = self.opportunity_id
        # With leads sent too, the lead and its first order are one Metrica order: the deal
        # goes from "created" to "paid" once, instead of being counted as two orders.
        if lead and self._metrika_company().metrika_send_leads and self.id == min(lead.order_ids.ids):
            return f"lead-{lead.id}", lead.create_date
        return f"so-{self.id}", self.create_date or self.env.cr.now()

    def _metrika_revenue(self):
        return self.amount_total, self.currency_id

    # ------------------------------------------------------------------
    # Business events
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        orders = super().create(vals_list)
        created_mode = orders.filtered(
            lambda order: order.company_id.metrika_order_event == "created"
            and not order._metrika_is_website_cart()
        )
        if created_mode:
            self.env["metrika.conversion"]._metrika_enqueue(created_mode, const.EVENT_IN_PROGRESS)
        return orders

    def _metrika_is_website_cart(self):
        # Carts are created on the first "add to cart" and mostly abandoned: they count
        # when confirmed, not when created.
        return "website_id" in self._fields and bool(self.website_id) and self.state == "draft"

    def _action_confirm(self):
        result = super()._action_confirm()
        self.env["metrika.conversion"]._metrika_enqueue(self, const.EVENT_IN_PROGRESS)
        return result

    def _action_cancel(self):
        result = super()._action_cancel()
        # Metrica only hears of a cancellation for an order it was told about.
        known = self.env["metrika.conversion"].sudo().search(
            [("sale_order_id", "in", self.ids), ("event", "=", const.EVENT_IN_PROGRESS)]
        ).sale_order_id
        if known:
            self.env["metrika.conversion"]._metrika_enqueue(known, const.EVENT_CANCELLED)
        return result

    def _metrika_is_paid(self):
        """Paid in full: by online transactions, or by posted customer invoices net of refunds."""
        self.ensure_one()
        if self.state != "sale" or self.currency_id.is_zero(self.amount_total):
            return False
        if self._is_paid():
            return True
        invoices = self.invoice_ids.filtered(lambda move: move.state == "posted")
        if not invoices or any(
            move.move_type == "out_invoice" and move.payment_state not in ("paid", "in_payment")
            for move in invoices
        ):
            return False
        paid = sum(
            move.amount_total if move.move_type == "out_invoice" else -move.amount_total
            for move in invoices if move.move_type in ("out_invoice", "out_refund")
        )
        return self.currency_id.compare_amounts(paid, self.amount_total) >= 0

    def _metrika_enqueue_if_paid(self):
        paid = self.filtered(lambda order: order._metrika_is_paid())
        if paid:
            self.env["metrika.conversion"]._metrika_enqueue(paid, const.EVENT_PAID)

    def _metrika_enqueue_current_state(self):
        conversions = self.env["metrika.conversion"]
        conversions._metrika_enqueue(
            self.filtered(lambda order: order.state == "sale"
                          or order.company_id.metrika_order_event == "created"),
            const.EVENT_IN_PROGRESS,
        )
        self.filtered(lambda order: order.state == "sale")._metrika_enqueue_if_paid()
        conversions._metrika_enqueue(
            self.filtered(lambda order: order.state == "cancel"), const.EVENT_CANCELLED
        )
