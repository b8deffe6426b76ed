"""Coverage: which share of the confirmed and paid sale orders and of the won leads carries each
identifier Metrica links by, and each attribution quality. One row per order or lead, in a
materialized view that a cron refreshes (tools/metrika_dashboard.py); the shares are averages of
100 (has it) and 0 (has it not)."""

from odoo import api, fields, models
from odoo.tools import SQL

from .. import const
from ..tools import metrika_dashboard
from .metrika_identifier_mixin import ATTRIBUTION_SELECTION

STAGE_CONFIRMED = "confirmed"
STAGE_PAID = "paid"
STAGE_WON = "won"
SHARE_HELP = "Share of the orders and leads counted here that carry it, in percent."


def _share(string):
    return fields.Float(
        string=string, readonly=True, aggregator="avg", digits=(16, 1), help=SHARE_HELP
    )


class MetrikaCoverageReport(models.Model):
    _name = "metrika.coverage.report"
    _description = "Yandex Metrica identifier coverage"
    _auto = False
    _order = "date desc"
    _rec_name = "name"

    company_id = fields.Many2one("res.company", readonly=True)
    name = fields.Char(string="Record", readonly=True)
    record_type = fields.Selection(
        [("order", "Sale order"), ("lead", "Lead")], string="Record type", readonly=True
    )
    stage = fields.Selection(
        [(STAGE_CONFIRMED, "Confirmed"), (STAGE_PAID, "Paid"), (STAGE_WON, "Won")],
        readonly=True,
        help="Paid: Metrica's log has the order's payment (the company sends paid orders).",
    )
    date = fields.Datetime(
        readonly=True, help="The order date of an order, the closing date of a lead."
    )
    attribution = fields.Selection(
        ATTRIBUTION_SELECTION,
        string="Attribution quality",
        readonly=True,
        help="Maximum with a ClientID and a phone or e-mail, good with a ClientID only, medium "
        "with a phone or e-mail only. A phone counts here when one is filled in, even if the "
        "upload cannot read it as a number.",
    )
    client_id_share = _share("With a ClientID (%)")
    yclid_share = _share("With a yclid (%)")
    phone_share = _share("With a phone (%)")
    email_share = _share("With an e-mail (%)")
    attribution_maximum_share = _share("Maximum attribution (%)")
    attribution_good_share = _share("Good attribution (%)")
    attribution_medium_share = _share("Medium attribution (%)")
    attribution_none_share = _share("No attribution (%)")

    def _phone_sql(self, model, alias):
        """Whether the record has a phone: any of the phone fields the series has filled in."""
        names = [name for name in ("phone", "mobile") if name in self.env[model]._fields]
        return SQL(" OR ").join(
            SQL("COALESCE(btrim(%s), '') != ''", SQL.identifier(alias, name)) for name in names
        )

    def init(self):
        has_client_id = SQL("COALESCE(identified.client_id, '') != ''")
        has_contact = SQL("(identified.has_phone OR identified.has_email)")
        attribution = SQL(
            """CASE WHEN %(client)s AND %(contact)s THEN %(maximum)s
                    WHEN %(client)s THEN %(good)s
                    WHEN %(contact)s THEN %(medium)s
                    ELSE %(none)s END""",
            client=has_client_id,
            contact=has_contact,
            maximum=const.ATTRIBUTION_MAXIMUM,
            good=const.ATTRIBUTION_GOOD,
            medium=const.ATTRIBUTION_MEDIUM,
            none=const.ATTRIBUTION_NONE,
        )
        metrika_dashboard.drop_plain_view(self.env.cr, self._table)
        metrika_dashboard.rebuild_materialized_view(
            self.env.cr,
            self._table,
            SQL(
                """WITH identified AS (
                    SELECT sale.id * 2 AS id, sale.company_id, sale.name, 'order' AS record_type,
                           CASE WHEN EXISTS (
                                    SELECT 1 FROM metrika_conversion paid
                                     WHERE paid.sale_order_id = sale.id
                                       AND paid.event = %(paid_event)s)
                                THEN %(paid)s ELSE %(confirmed)s END AS stage,
                           sale.date_order AS date,
                           sale.metrika_client_id AS client_id,
                           COALESCE(sale.metrika_yclid, '') != '' AS has_yclid,
                           (%(partner_phone)s) AS has_phone,
                           strpos(COALESCE(partner.email, ''), '@') > 0 AS has_email
                      FROM sale_order sale
                      JOIN res_partner partner ON partner.id = sale.partner_id
                     WHERE sale.state = 'sale'
                    UNION ALL
                    SELECT lead.id * 2 + 1, lead.company_id, lead.name, 'lead', %(won)s,
                           COALESCE(lead.date_closed, lead.create_date),
                           lead.metrika_client_id,
                           COALESCE(lead.metrika_yclid, '') != '',
                           (%(lead_phone)s),
                           strpos(COALESCE(lead.email_from, ''), '@') > 0
                      FROM crm_lead lead
                      JOIN crm_stage stage ON stage.id = lead.stage_id
                     WHERE lead.active AND stage.is_won
                )
                SELECT identified.id, identified.company_id, identified.name,
                       identified.record_type, identified.stage, identified.date,
                       %(attribution)s AS attribution,
                       CASE WHEN %(client)s THEN 100 ELSE 0 END AS client_id_share,
                       CASE WHEN identified.has_yclid THEN 100 ELSE 0 END AS yclid_share,
                       CASE WHEN identified.has_phone THEN 100 ELSE 0 END AS phone_share,
                       CASE WHEN identified.has_email THEN 100 ELSE 0 END AS email_share,
                       CASE WHEN %(attribution)s = %(maximum)s THEN 100 ELSE 0 END
                           AS attribution_maximum_share,
                       CASE WHEN %(attribution)s = %(good)s THEN 100 ELSE 0 END
                           AS attribution_good_share,
                       CASE WHEN %(attribution)s = %(medium)s THEN 100 ELSE 0 END
                           AS attribution_medium_share,
                       CASE WHEN %(attribution)s = %(none)s THEN 100 ELSE 0 END
                           AS attribution_none_share
                  FROM identified""",
                paid_event=const.EVENT_PAID,
                paid=STAGE_PAID,
                confirmed=STAGE_CONFIRMED,
                won=STAGE_WON,
                partner_phone=self._phone_sql("res.partner", "partner"),
                lead_phone=self._phone_sql("crm.lead", "lead"),
                attribution=attribution,
                client=has_client_id,
                maximum=const.ATTRIBUTION_MAXIMUM,
                good=const.ATTRIBUTION_GOOD,
                medium=const.ATTRIBUTION_MEDIUM,
                none=const.ATTRIBUTION_NONE,
            ),
            indexes=("date",),
        )

    @api.model
    def _metrika_refresh(self):
        """Bring the figures up to date (the cron's job, every few minutes)."""
        self.env.flush_all()
        metrika_dashboard.refresh_views(self.env.cr, [self._table])
