import logging

import psycopg2

from odoo import api, fields, models

from .. import const
from ..tools import odoo_compat

_logger = logging.getLogger(__name__)
# Where an order's phone and e-mail come from: its customer's fields (``mobile`` exists on
# 18.0 only; the fields missing on a series are left out).
PARTNER_CONTACT_FIELDS = ("email", "phone", "mobile")
PARTNER_PHONE_FIELDS = ("mobile", "phone")

# A reversed invoice is settled by its credit note: it does not hold the order "unpaid".
SETTLED_INVOICE_STATES = ("paid", "in_payment", "reversed")


class SaleOrder(models.Model):
    _name = "sale.order"
    _inherit = ["sale.order", "metrika.identifier.mixin"]
    _metrika_conversion_field = "sale_order_id"
    # Another customer may have the phone or e-mail the first one lacked.
    _metrika_contact_fields = ("partner_id",)

    # A quotation made from (or later linked to) an opportunity takes its identifiers,
    # but never loses its own.
    metrika_client_id = fields.Char(
        compute="_compute_metrika_identifiers", store=True, readonly=False, precompute=True
    )
    metrika_yclid = fields.Char(
        compute="_compute_metrika_identifiers", store=True, readonly=False, precompute=True
    )
    metrika_conversion_ids = fields.One2many(
        "metrika.conversion",
        "sale_order_id",
        string="Metrica conversion log",
        groups="metrika_offline_conversions.group_metrika_manager",
    )

    @api.depends("opportunity_id.metrika_client_id", "opportunity_id.metrika_yclid")
    def _compute_metrika_identifiers(self):
        for order in self:
            lead = order.opportunity_id
            order.metrika_client_id = order.metrika_client_id or lead.metrika_client_id
            order.metrika_yclid = order.metrika_yclid or lead.metrika_yclid

    def _metrika_attribution_depends(self):
        return odoo_compat.field_paths(
            self,
            ["metrika_client_id", *(f"partner_id.{fname}" for fname in PARTNER_CONTACT_FIELDS)],
        )

    def _metrika_contact_values(self):
        partner = self.partner_id
        return [partner.email], odoo_compat.field_values(partner, PARTNER_PHONE_FIELDS)

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
        if (
            lead
            and self._metrika_company().metrika_send_leads
            and self.id == self._metrika_first_order_id(lead)
        ):
            return f"lead-{lead.id}", lead.create_date
        return f"so-{self.id}", self.create_date or self.env.cr.now()

    def _metrika_first_order_id(self, lead):
        # Searched, not min(lead.order_ids.ids): that one2many is filtered by the user's record
        # rules (a salesperson may not see a colleague's earlier quotation), so two quotations
        # could both claim the lead's id.
        return (
            self.env["sale.order"]
            .sudo()
            .search([("opportunity_id", "=", lead.id)], order="id", limit=1)
            .id
        )

    def _metrika_revenue(self):
        return self.amount_total, self.currency_id

    # ------------------------------------------------------------------
    # Business events
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        orders = super().create(vals_list)
        created_mode = orders.filtered(lambda order: order._metrika_counts_when_created())
        if created_mode:
            self.env["metrika.conversion"]._metrika_enqueue(created_mode, const.EVENT_IN_PROGRESS)
        return orders

    def _metrika_is_website_cart(self):
        # Carts are created on the first "add to cart" and mostly abandoned: they count
        # when confirmed, not when created.
        return "website_id" in self._fields and bool(self.website_id) and self.state == "draft"

    def _metrika_retry_skipped(self, contact_only=False):
        # A website cart gets no conversion before it is confirmed unless orders count when
        # created: capturing its identifiers need not look for skipped ones.
        orders = self.filtered(
            lambda order: (
                not (
                    order._metrika_is_website_cart()
                    and order.company_id.metrika_order_event != const.ORDER_EVENT_CREATED
                )
            )
        )
        if not orders:
            return None
        return super(SaleOrder, orders)._metrika_retry_skipped(contact_only=contact_only)

    def _action_confirm(self):
        result = super()._action_confirm()
        self.env["metrika.conversion"]._metrika_enqueue(self, const.EVENT_IN_PROGRESS)
        return result

    def _action_cancel(self):
        result = super()._action_cancel()
        self._metrika_enqueue_cancelled()
        return result

    def action_draft(self):
        cancelled = self.filtered(lambda order: order.state == "cancel")
        result = super().action_draft()
        # Where quotations count (sent when created), a cancelled order set back to quotation is
        # in progress again: Metrica must not keep it as cancelled.
        reopened = cancelled.filtered(lambda order: order._metrika_counts_when_created())
        if reopened:
            self.env["metrika.conversion"]._metrika_enqueue(reopened, const.EVENT_IN_PROGRESS)
        return result

    def _metrika_counts_when_created(self):
        self.ensure_one()
        return (
            self.company_id.metrika_order_event == const.ORDER_EVENT_CREATED
            and not self._metrika_is_website_cart()
        )

    def _metrika_enqueue_cancelled(self):
        # Metrica only hears of a cancellation for an order it was told about.
        known = (
            self.env["metrika.conversion"]
            .sudo()
            .search([("sale_order_id", "in", self.ids), ("event", "=", const.EVENT_IN_PROGRESS)])
            .sale_order_id
        )
        if known:
            self.env["metrika.conversion"]._metrika_enqueue(
                self.browse(known.ids), const.EVENT_CANCELLED
            )

    def _metrika_is_paid(self):
        """Paid in full: by online transactions, or by posted customer invoices net of refunds."""
        self.ensure_one()
        if self.state != "sale" or self.currency_id.is_zero(self.amount_total):
            return False
        # Not sale's _is_paid(): it counts "authorized" transactions, money only held on the card
        # (manual capture), which may still be voided.
        captured = sum(
            tx.amount
            for tx in self.transaction_ids
            if tx.state == "done" and tx.operation != "validation"
        )
        if self.currency_id.compare_amounts(captured, self.amount_total) >= 0:
            return True
        invoices = self.invoice_ids.filtered(lambda move: move.state == "posted")
        if not invoices or any(
            move.move_type == "out_invoice" and move.payment_state not in SETTLED_INVOICE_STATES
            for move in invoices
        ):
            return False
        paid = sum(
            move.amount_total if move.move_type == "out_invoice" else -move.amount_total
            for move in invoices
            if move.move_type in ("out_invoice", "out_refund")
        )
        return self.currency_id.compare_amounts(paid, self.amount_total) >= 0

    def _metrika_enqueue_if_paid(self):
        """Queue "paid" for the orders now paid in full; never raises into the payment.

        Called from payment and reconciliation code run by accountants, portal customers or
        the payment cron, who may not read sale orders: the check runs as superuser.
        """
        orders = self.sudo()
        paid_ids = []
        for order in orders:
            # Read-only, so nothing to undo when it fails. Database errors are not swallowed:
            # the transaction is aborted then, and hiding it would only move the error.
            try:
                if order._metrika_is_paid():
                    paid_ids.append(order.id)
            except psycopg2.Error:
                raise
            except Exception:  # noqa: BLE001 - a payment must go through whatever happens here
                _logger.exception("Metrica: cannot tell whether %s is paid", order)
        if paid_ids:
            self.env["metrika.conversion"]._metrika_enqueue(
                orders.browse(paid_ids), const.EVENT_PAID
            )

    def _metrika_enqueue_current_state(self):
        conversions = self.env["metrika.conversion"]
        conversions._metrika_enqueue(
            self.filtered(
                lambda order: (
                    order.state == "sale"
                    or (
                        order.state in ("draft", "sent")
                        and order.company_id.metrika_order_event == const.ORDER_EVENT_CREATED
                    )
                )
            ),
            const.EVENT_IN_PROGRESS,
        )
        self.filtered(lambda order: order.state == "sale")._metrika_enqueue_if_paid()
        # As on cancelling: a quotation Metrica never heard of is not sent as cancelled.
        self.filtered(lambda order: order.state == "cancel")._metrika_enqueue_cancelled()
