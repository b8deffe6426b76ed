"""The dashboard of the sync log: one row per conversion, read through an SQL view, with the
figures the pivot and graph views add up (queued, sent, accepted, linked, skipped, in error,
stuck) by company, counter, upload method, week and reason."""

from odoo import fields, models
from odoo.tools import SQL

from .. import const
from .metrika_conversion import FAILURE_REASON_SELECTION, RESULT_SELECTION, STATE_SELECTION

# Metrica stored the rows of these results (their file was accepted, wholly or in part).
STORED_RESULTS = (
    const.RESULT_ACCEPTED,
    const.RESULT_PROCESSING,
    const.RESULT_PARTLY_REFUSED,
    const.RESULT_LINKED,
    const.RESULT_PARTLY_LINKED,
    const.RESULT_NOT_LINKED,
    const.RESULT_UNCONFIRMED,
)
# Metrica said how many rows of these files it linked to visits (goal-based uploads only).
LINKING_RESULTS = (const.RESULT_LINKED, const.RESULT_PARTLY_LINKED, const.RESULT_NOT_LINKED)


class MetrikaConversionReport(models.Model):
    _name = "metrika.conversion.report"
    _description = "Yandex Metrica dashboard"
    _auto = False
    _order = "date desc"
    _rec_name = "record_name"

    company_id = fields.Many2one("res.company", readonly=True)
    counter = fields.Char(
        string="Counter",
        readonly=True,
        help="The counter the company sends to now (the sync log does not keep the counter of "
        "each upload).",
    )
    transport = fields.Selection(const.TRANSPORT_SELECTION, string="Upload method", readonly=True)
    date = fields.Datetime(string="Queued on", readonly=True)
    record_name = fields.Char(string="Record", readonly=True)
    record_type = fields.Selection(
        [("order", "Sale order"), ("lead", "Lead")], string="Record type", readonly=True
    )
    event = fields.Selection(
        [
            (const.EVENT_IN_PROGRESS, "Created"),
            (const.EVENT_PAID, "Paid or won"),
            (const.EVENT_CANCELLED, "Cancelled or lost"),
        ],
        readonly=True,
    )
    state = fields.Selection(STATE_SELECTION, readonly=True)
    failure_reason = fields.Selection(FAILURE_REASON_SELECTION, readonly=True)
    metrika_result = fields.Selection(RESULT_SELECTION, string="What Metrica did", readonly=True)
    queued_count = fields.Integer(string="Queued", readonly=True, aggregator="sum")
    sent_count = fields.Integer(string="Sent", readonly=True, aggregator="sum")
    accepted_count = fields.Float(
        string="Accepted",
        readonly=True,
        aggregator="sum",
        digits=(16, 1),
        help="Rows Metrica stored. Metrica counts the rows it refuses in a goal-based file but "
        "does not say which: each row of that file counts for the share of the file it stored.",
    )
    linked_count = fields.Float(
        string="Linked",
        readonly=True,
        aggregator="sum",
        digits=(16, 1),
        help="Goal-based rows Metrica linked to a visit. It reports how many rows of a file it "
        "linked, not which: each row counts for the share of its file linked. For CRM orders "
        "Metrica does not report linking.",
    )
    skipped_count = fields.Integer(string="Skipped", readonly=True, aggregator="sum")
    error_count = fields.Integer(string="In error", readonly=True, aggregator="sum")
    stuck_count = fields.Integer(
        string="Stuck",
        readonly=True,
        aggregator="sum",
        help="Still waiting to be sent (or for the answer to their upload) more than an hour "
        "after they were queued.",
    )
    stuck_hours = fields.Float(
        string="Stuck for (hours)",
        readonly=True,
        aggregator="max",
        digits=(16, 1),
        help="The hours the oldest stuck conversion has waited since it was queued.",
    )

    def init(self):
        self.env.cr.execute(
            SQL(
                """CREATE OR REPLACE VIEW %(view)s AS (
                SELECT conversion.id AS id,
                       conversion.company_id AS company_id,
                       company.metrika_counter_id AS counter,
                       conversion.transport AS transport,
                       conversion.create_date AS date,
                       conversion.record_name AS record_name,
                       CASE WHEN conversion.sale_order_id IS NOT NULL THEN 'order'
                            WHEN conversion.lead_id IS NOT NULL THEN 'lead' END AS record_type,
                       conversion.event AS event,
                       conversion.state AS state,
                       conversion.failure_reason AS failure_reason,
                       conversion.metrika_result AS metrika_result,
                       1 AS queued_count,
                       (conversion.state = %(sent)s)::int AS sent_count,
                       CASE WHEN conversion.state != %(sent)s
                                 OR conversion.metrika_result NOT IN %(stored)s THEN 0
                            WHEN conversion.transport = %(offline)s
                                THEN COALESCE(upload.line_quantity::numeric
                                              / NULLIF(upload.source_quantity, 0), 1)
                            ELSE 1 END AS accepted_count,
                       CASE WHEN conversion.state != %(sent)s
                                 OR conversion.transport != %(offline)s
                                 OR conversion.metrika_result NOT IN %(linking)s THEN 0
                            ELSE COALESCE(
                                upload.linked_quantity::numeric
                                / NULLIF(upload.source_quantity, 0),
                                (conversion.metrika_result = %(linked)s)::int)
                            END AS linked_count,
                       (conversion.state = %(skipped)s)::int AS skipped_count,
                       (conversion.state = %(error)s)::int AS error_count,
                       (conversion.state IN %(waiting)s
                        AND conversion.create_date < %(stuck_before)s)::int AS stuck_count,
                       CASE WHEN conversion.state IN %(waiting)s
                                 AND conversion.create_date < %(stuck_before)s
                            THEN EXTRACT(EPOCH FROM %(now)s - conversion.create_date) / 3600
                            END AS stuck_hours
                  FROM metrika_conversion conversion
                  JOIN res_company company ON company.id = conversion.company_id
                  LEFT JOIN metrika_upload upload ON upload.id = conversion.upload_id
                )""",
                view=SQL.identifier(self._table),
                sent=const.STATE_SENT,
                skipped=const.STATE_SKIPPED,
                error=const.STATE_ERROR,
                waiting=(const.STATE_PENDING, const.STATE_SENDING),
                stored=STORED_RESULTS,
                linking=LINKING_RESULTS,
                linked=const.RESULT_LINKED,
                offline=const.TRANSPORT_OFFLINE,
                # The view is read at query time: "now" is the query's, in UTC as Odoo stores.
                now=SQL("(now() AT TIME ZONE 'UTC')"),
                stuck_before=SQL(
                    "(now() AT TIME ZONE 'UTC' - %s * INTERVAL '1 hour')", const.STUCK_AFTER_HOURS
                ),
            )
        )
