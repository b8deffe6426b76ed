"""The log of the Conversion Centre's fetches of a company's link (controllers/centre_link.py),
shown beside the sync log."""

from datetime import timedelta

from odoo import api, fields, models

from .. import const

FETCH_METHOD_SELECTION = [("GET", "GET"), ("HEAD", "HEAD")]


class MetrikaCentreFetch(models.Model):
    _name = "metrika.centre.fetch"
    _description = "Yandex Metrica Conversion Centre fetch"
    _order = "id desc"

    # Written by the link's controller only (as superuser): nobody edits the log.
    company_id = fields.Many2one("res.company", required=True, readonly=True, index=True)
    fetched_at = fields.Datetime(
        string="Fetched on", required=True, readonly=True, default=fields.Datetime.now
    )
    method = fields.Selection(FETCH_METHOD_SELECTION, required=True, readonly=True)
    http_status = fields.Integer(string="HTTP status", readonly=True)
    rows_served = fields.Integer(
        readonly=True, help="Conversions written into the file (none for HEAD or 304)."
    )
    rows_left_out = fields.Integer(
        readonly=True,
        help="Conversions of the window left out of the file: no identifier, or data the "
        "Centre would refuse.",
    )
    complete = fields.Boolean(
        readonly=True, help="The whole file was sent (False: the client stopped reading)."
    )
    remote_address = fields.Char(readonly=True)
    duration = fields.Float(string="Duration (s)", readonly=True, digits=(16, 3))

    @api.autovacuum
    def _gc_metrika_centre_fetches(self):
        """The log is kept as long as the sync log's default retention."""
        limit = fields.Datetime.now() - timedelta(days=const.DEFAULT_LOG_RETENTION_DAYS)
        self.sudo().search([("fetched_at", "<", limit)]).unlink()
