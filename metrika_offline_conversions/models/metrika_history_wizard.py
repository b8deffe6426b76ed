"""History sent at connection: a preview of the orders and leads Metrica can still link, and the
action that queues them (tools/metrika_history.py). Never sends: the upload cron does."""

from collections import Counter

from markupsafe import Markup, escape

from odoo import api, fields, models
from odoo.exceptions import AccessError

from .. import const
from ..tools import metrika_history


class MetrikaHistoryWizard(models.TransientModel):
    _name = "metrika.history.wizard"
    _description = "Yandex Metrica: send the history"

    company_id = fields.Many2one(
        "res.company", required=True, readonly=True, default=lambda self: self.env.company
    )
    conversion_count = fields.Integer(
        string="Conversions to queue", compute="_compute_metrika_preview"
    )
    preview = fields.Html(string="What will be queued", compute="_compute_metrika_preview")

    @api.depends("company_id")
    def _compute_metrika_preview(self):
        for wizard in self:
            planned = metrika_history.history_plan(wizard.env, wizard.company_id)
            wizard.conversion_count = len(planned)
            wizard.preview = wizard._metrika_preview_text(planned)

    def _metrika_preview_text(self, planned):
        company = self.company_id.sudo()
        env = self.env
        if not company.metrika_enabled:
            return Markup("<p>%s</p>") % env._("Sending to Yandex Metrica is off for this company.")
        if company.metrika_transport == const.TRANSPORT_OFFLINE:
            window = env._(
                "Goal-based conversions that happened in the last %s days: Metrica adds none older "
                "to a visit.",
                const.OFFLINE_VISIT_WINDOW_DAYS,
            )
        else:
            window = env._(
                "Orders created in the last %(link)s days, and updates of orders Metrica already "
                "has that were created in the last %(update)s days: Metrica links no older ones.",
                link=const.CRM_NEW_ORDER_LINK_DAYS,
                update=const.CRM_LINKED_ORDER_UPDATE_DAYS,
            )
        lines = [window]
        if not planned:
            lines.append(env._("Nothing to queue: every one of them is in the sync log already."))
            return Markup("").join(Markup("<p>%s</p>") % line for line in lines)
        # Each record once, with the status of its last event: the status Metrica will show.
        current = {}
        for item in planned:
            current[item.record] = item.record._metrika_order_status(item.event)
        labels = dict(
            self.env["metrika.conversion"]._fields["order_status"]._description_selection(env)
        )
        items = []
        # Titles apart from the model names: the term extractor would take those in too.
        orders_title = env._("Sale orders")
        leads_title = env._("Leads")
        for model, title in (("sale.order", orders_title), ("crm.lead", leads_title)):
            counts = Counter(status for record, status in current.items() if record._name == model)
            if counts:
                detail = ", ".join(
                    f"{count} {labels.get(status, status).lower()}"
                    for status, count in sorted(counts.items())
                )
                items.append(f"{title}: {sum(counts.values())} ({detail})")
        lines.append(
            env._(
                "%(conversions)s conversions will be queued, with each record's current status "
                "and the dates its events happened:",
                conversions=len(planned),
            )
        )
        unlinkable = sum(
            1 for record in current if not metrika_history.has_identifier(record, company)
        )
        html = Markup("<p>%s</p>") % lines[0] + Markup("<p>%s</p>") % lines[1]
        html += Markup("<ul>%s</ul>") % Markup("").join(
            Markup("<li>%s</li>") % escape(item) for item in items
        )
        if unlinkable:
            html += Markup("<p>%s</p>") % env._(
                "%s of them carry nothing Metrica links by yet (no ClientID, yclid, phone or "
                "e-mail the upload method uses): they are logged as skipped, and go out once one "
                "arrives.",
                unlinkable,
            )
        return html

    @api.model
    def _metrika_check_history_access(self, company):
        """Queuing the history changes what is sent: managers and administrators of the company
        only, checked here and not only by the button's groups."""
        user = self.env.user
        if not any(user.has_group(group) for group in const.HISTORY_GROUPS):
            raise AccessError(
                self.env._("Only Yandex Metrica managers may send the history to Metrica.")
            )
        if company not in user.company_ids:
            raise AccessError(self.env._("You may not send the history of this company."))

    @api.model
    def _metrika_open(self, company):
        """The preview of ``company``'s history, in a dialog."""
        self._metrika_check_history_access(company)
        wizard = self.create({"company_id": company.id})
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send the history to Yandex Metrica"),
            "res_model": self._name,
            "res_id": wizard.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
        }

    def action_metrika_queue_history(self):
        self.ensure_one()
        self._metrika_check_history_access(self.company_id)
        # Planned again: the preview may be minutes old.
        planned = metrika_history.history_plan(self.env, self.company_id)
        written = metrika_history.queue_history(self.env, planned)
        self._metrika_offered()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": self.env._(
                    "%s conversions queued: they go to Yandex Metrica with the next upload.",
                    len(written),
                ),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    def action_metrika_not_now(self):
        self.ensure_one()
        self._metrika_check_history_access(self.company_id)
        self._metrika_offered()
        return {"type": "ir.actions.act_window_close"}

    def _metrika_offered(self):
        # Saving Settings no longer opens the preview: the button in Settings does.
        self.company_id.sudo().metrika_history_offer = const.HISTORY_OFFERED
