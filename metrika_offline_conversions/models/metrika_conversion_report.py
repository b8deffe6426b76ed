"""The dashboard of the sync log: the figures the pivot and graph views add up (queued, sent,
accepted, linked, skipped, in error, stuck) by company, counter, upload method, week and reason.

One row per day and kind of conversion (company, counter, method, record type, event, state,
reason, result), counted in a materialized view that a cron refreshes (tools/metrika_dashboard.py).
"""

from odoo import api, fields, models
from odoo.tools import SQL

from .. import const
from ..tools import metrika_dashboard
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
# The counts by day, refreshed by the cron; the model reads them through a plain view.
DATA_VIEW = "metrika_conversion_report_data"


class MetrikaConversionReport(models.Model):
    _name = "metrika.conversion.report"
    _description = "Yandex Metrica dashboard"
    _auto = False
    _order = "date desc"

    company_id = fields.Many2one("res.company", readonly=True)
    counter = fields.Char(
        readonly=True,
        help="The counter the company sends to now (the sync log does not keep the counter of "
        "each upload).",
    )
    transport = fields.Selection(const.TRANSPORT_SELECTION, string="Upload method", readonly=True)
    date = fields.Date(string="Queued on", readonly=True, help="The day (UTC) it was queued.")
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
        "after they were queued, when the figures were brought up to date.",
    )
    stuck_hours = fields.Float(
        string="Stuck for (hours)",
        readonly=True,
        aggregator="max",
        digits=(16, 1),
        help="The hours the oldest stuck conversion has waited since it was queued.",
    )
    stuck_since = fields.Datetime(
        string="Stuck since",
        readonly=True,
        aggregator="min",
        help="When the oldest stuck conversion was queued.",
    )

    def init(self):
        tools = metrika_dashboard
        tools.drop_plain_view(self.env.cr, self._table)
        # One row per day and kind of conversion, with the counts: the pivot adds up a few
        # thousand rows instead of every conversion.
        tools.rebuild_materialized_view(
            self.env.cr, DATA_VIEW, self._data_query(), indexes=("date", "company_id")
        )
        # The hours stuck are counted at reading time.
        self.env.cr.execute(
            SQL(
                """CREATE OR REPLACE VIEW %(view)s AS (
                SELECT data.*,
                       EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC') - data.stuck_since) / 3600
                           AS stuck_hours
                  FROM %(data)s data)""",
                view=SQL.identifier(self._table),
                data=SQL.identifier(DATA_VIEW),
            )
        )

    @api.model
    def _cron_refresh_dashboard(self):
        """Bring the dashboard's figures up to date: the sync log's and the coverage's."""
        self._metrika_refresh()
        self.env["metrika.coverage.report"]._metrika_refresh()

    @api.model
    def _metrika_refresh(self):
        """Bring the figures up to date (the cron's job, every few minutes)."""
        self.env.flush_all()
        metrika_dashboard.refresh_views(self.env.cr, [DATA_VIEW])

    def _data_query(self):
        stuck = SQL(
            "(conversion.state IN %s AND conversion.create_date < "
            "(now() AT TIME ZONE 'UTC' - %s * INTERVAL '1 hour'))",
            (const.STATE_PENDING, const.STATE_SENDING),
            const.STUCK_AFTER_HOURS,
        )
        return SQL(
            """SELECT row_number() OVER () AS id, rows.company_id, rows.counter, rows.transport,
                      rows.date, rows.record_type, rows.event, rows.state, rows.failure_reason,
                      rows.metrika_result,
                      count(*) AS queued_count,
                      sum(rows.sent) AS sent_count,
                      sum(rows.accepted) AS accepted_count,
                      sum(rows.linked) AS linked_count,
                      sum(rows.skipped) AS skipped_count,
                      sum(rows.error) AS error_count,
                      sum(rows.stuck) AS stuck_count,
                      min(rows.stuck_since) AS stuck_since
                 FROM (
                SELECT conversion.company_id AS company_id,
                       company.metrika_counter_id AS counter,
                       conversion.transport AS transport,
                       conversion.create_date::date AS date,
                       CASE WHEN conversion.sale_order_id IS NOT NULL THEN 'order'
                            WHEN conversion.lead_id IS NOT NULL THEN 'lead' END AS record_type,
                       conversion.event AS event,
                       conversion.state AS state,
                       conversion.failure_reason AS failure_reason,
                       conversion.metrika_result AS metrika_result,
                       (conversion.state = %(sent)s)::int AS sent,
                       CASE WHEN conversion.state != %(sent)s
                                 OR conversion.metrika_result NOT IN %(stored)s THEN 0
                            WHEN conversion.transport = %(offline)s
                                THEN COALESCE(upload.line_quantity::numeric
                                              / NULLIF(upload.source_quantity, 0), 1)
                            ELSE 1 END AS accepted,
                       CASE WHEN conversion.state != %(sent)s
                                 OR conversion.transport != %(offline)s
                                 OR conversion.metrika_result NOT IN %(linking)s THEN 0
                            ELSE COALESCE(
                                upload.linked_quantity::numeric
                                / NULLIF(upload.source_quantity, 0),
                                (conversion.metrika_result = %(linked)s)::int)
                            END AS linked,
                       (conversion.state = %(skipped)s)::int AS skipped,
                       (conversion.state = %(error)s)::int AS error,
                       %(stuck)s::int AS stuck,
                       CASE WHEN %(stuck)s THEN conversion.create_date END AS stuck_since
                  FROM metrika_conversion conversion
                  JOIN res_company company ON company.id = conversion.company_id
                  LEFT JOIN metrika_upload upload ON upload.id = conversion.upload_id
                ) AS rows
                GROUP BY rows.company_id, rows.counter, rows.transport, rows.date,
                         rows.record_type, rows.event, rows.state, rows.failure_reason,
                         rows.metrika_result""",
            sent=const.STATE_SENT,
            skipped=const.STATE_SKIPPED,
            error=const.STATE_ERROR,
            stored=STORED_RESULTS,
            linking=LINKING_RESULTS,
            linked=const.RESULT_LINKED,
            offline=const.TRANSPORT_OFFLINE,
            stuck=stuck,
        )
