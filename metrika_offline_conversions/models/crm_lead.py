from odoo import api, fields, models

from .. import const
from ..metrika_core import formats
from ..tools import metrika_capture, odoo_compat

# Writing one of these may win or lose a lead.
OUTCOME_FIELDS = ("active", "stage_id", "probability")


class CrmLead(models.Model):
    _name = "crm.lead"
    _inherit = ["crm.lead", "metrika.identifier.mixin"]
    _metrika_conversion_field = "lead_id"
    # ``mobile`` exists on 18.0 only; the phone fields missing on a series are left out.
    _metrika_contact_fields = ("email_from", "phone", "mobile")
    _metrika_phone_fields = ("mobile", "phone")

    metrika_conversion_ids = fields.One2many(
        "metrika.conversion",
        "lead_id",
        string="Metrica conversion log",
        groups="metrika_offline_conversions.group_metrika_manager",
    )

    def _metrika_attribution_depends(self):
        return odoo_compat.field_paths(self, ["metrika_client_id", *self._metrika_contact_fields])

    def _metrika_contact_values(self):
        return [self.email_from], odoo_compat.field_values(self, self._metrika_phone_fields)

    def _metrika_sends(self, event, company):
        return company.metrika_send_leads

    def _metrika_order_reference(self):
        return f"lead-{self.id}", self.create_date or self.env.cr.now()

    def _metrika_revenue(self):
        return self.expected_revenue, self.company_currency or self._metrika_company().currency_id

    def _metrika_order_status(self, event):
        if event == const.EVENT_CANCELLED and self._metrika_is_spam():
            return formats.SPAM
        return super()._metrika_order_status(event)

    def _metrika_is_spam(self):
        spam_reasons = self._metrika_company().metrika_spam_lost_reason_ids
        return bool(self.lost_reason_id and self.lost_reason_id in spam_reasons)

    def _metrika_outcome(self):
        """won, lost or open: 18.0 has no won/lost field, the stage and archiving say it."""
        self.ensure_one()
        if not self.active:
            return const.LEAD_LOST
        return const.LEAD_WON if self.stage_id.is_won else const.LEAD_OPEN

    # ------------------------------------------------------------------
    # Business events: every route (buttons, kanban drag, import) is a create or a write.
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        leads = super().create(vals_list)
        sending = leads.filtered(lambda lead: lead._metrika_company().metrika_send_leads)
        if sending:
            conversions = self.env["metrika.conversion"]
            conversions._metrika_enqueue(sending, const.EVENT_IN_PROGRESS)
            sending._metrika_enqueue_outcome({lead.id: const.LEAD_OPEN for lead in sending})
        return leads

    def write(self, vals):
        watch = self.browse()
        if any(name in vals for name in OUTCOME_FIELDS):
            watch = self.filtered(lambda lead: lead._metrika_company().metrika_send_leads)
        before = {lead.id: lead._metrika_outcome() for lead in watch}
        result = super().write(vals)
        if watch:
            watch._metrika_enqueue_outcome(before)
        if "lost_reason_id" in vals:
            self.env["metrika.conversion"]._metrika_restate_lost_leads(self)
        if vals.get("metrika_client_id") or vals.get("metrika_yclid"):
            # Quotations without identifiers of their own take the lead's (a stored compute,
            # no write): their conversions skipped for want of one can go out now.
            self.sudo().order_ids._metrika_retry_skipped()
        return result

    def _merge_get_fields(self):
        # Merging keeps the first identifier found, the kept lead's first: without this, the
        # visit of a lead merged away would be lost with it.
        return [*super()._merge_get_fields(), "metrika_client_id", "metrika_yclid"]

    @api.model
    def message_new(self, msg_dict, custom_values=None):
        # A lead mailed in by another site's form carries its identifiers as text lines
        # (README.rst); values the alias already sets are kept.
        identifiers = metrika_capture.text_identifiers(msg_dict.get("body"))
        if identifiers:
            custom_values = dict(custom_values or {})
            for field, value in identifiers.items():
                if not custom_values.get(field):
                    custom_values[field] = value
        return super().message_new(msg_dict, custom_values=custom_values)

    def _metrika_enqueue_outcome(self, before):
        conversions = self.env["metrika.conversion"]
        won = self.filtered(
            lambda lead: lead._metrika_outcome() == const.LEAD_WON != before.get(lead.id)
        )
        lost = self.filtered(
            lambda lead: lead._metrika_outcome() == const.LEAD_LOST != before.get(lead.id)
        )
        # A lead won or lost before and open again (restored, moved back to an open stage) is in
        # progress again for Metrica.
        reopened = self.filtered(
            lambda lead: (
                lead._metrika_outcome() == const.LEAD_OPEN
                and before.get(lead.id) in (const.LEAD_WON, const.LEAD_LOST)
            )
        )
        conversions._metrika_enqueue(won, const.EVENT_PAID)
        conversions._metrika_enqueue(lost, const.EVENT_CANCELLED)
        conversions._metrika_enqueue(reopened, const.EVENT_IN_PROGRESS)

    def _metrika_enqueue_current_state(self):
        conversions = self.env["metrika.conversion"]
        conversions._metrika_enqueue(self, const.EVENT_IN_PROGRESS)
        self._metrika_enqueue_outcome({})
