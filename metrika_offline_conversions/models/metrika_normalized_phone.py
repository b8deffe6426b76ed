"""Phone numbers as normalised for Metrica, remembered in the database: the Conversion Centre
link (tools/centre_link.py) normalises a number once, whatever the process or the restarts,
and an hourly cron prepares the numbers of each link's window before the Centre polls it.

The addon's internal cache: written by its code only (SQL), read by nobody but administrators.
"""

import logging
from datetime import datetime, timezone

from odoo import api, fields, models
from odoo.tools import SQL

from .. import const
from ..metrika_core.identifiers import PHONE_RULES_VERSION
from ..tools import centre_link, odoo_compat

_logger = logging.getLogger(__name__)


class MetrikaNormalizedPhone(models.Model):
    _name = "metrika.normalized.phone"
    _description = "Yandex Metrica normalised phone number"
    _log_access = False

    raw = fields.Char(string="Number as written", required=True, readonly=True)
    region = fields.Char(
        readonly=True,
        help="Country (ISO code) a number without a country code is read in; empty: none.",
    )
    normalized = fields.Char(
        string="Normalised number",
        readonly=True,
        help="Digits with the country code; empty when the number is not valid.",
    )
    version = fields.Char(
        string="Phone rules version",
        required=True,
        readonly=True,
        help="The phonenumbers release the number was normalised with.",
    )

    def init(self):
        odoo_compat.create_unique_index(
            self.env.cr,
            "metrika_normalized_phone_raw_region_version_uniq",
            self._table,
            ["raw", "region", "version"],
        )

    @api.model
    def _cron_prepare_centre_phones(self, batch_rows=const.CENTRE_PHONE_BATCH_ROWS):
        """Normalise the phone numbers of every enabled link's window not remembered yet, one
        committed batch at a time. Writes the memo only, never a business record."""
        now = datetime.now(timezone.utc)
        companies = (
            self.env["res.company"].sudo().search([("metrika_centre_link_enabled", "=", True)])
        )
        prepared_any = False
        for company in companies:
            region = company._metrika_phone_region()
            prepared = 0
            last_id = 0
            while True:
                last_id, raws = centre_link.unremembered_phones(
                    self.env, company.id, now, region, last_id, batch_rows
                )
                if last_id is None:
                    break
                if not raws:
                    continue
                centre_link.remember_phones(
                    self.env.cr,
                    region,
                    {raw: centre_link.normalized_phone(raw, region) for raw in raws},
                )
                prepared += len(raws)
                if not odoo_compat.test_owns_transaction(self.env.cr):
                    self.env.cr.commit()  # pylint: disable=invalid-commit
            if prepared:
                prepared_any = True
                _logger.info(
                    "Metrica: %s phone numbers prepared for the Conversion Centre link of "
                    "company %s",
                    prepared,
                    company.id,
                )
        if prepared_any:
            # Fresh statistics, once for all companies: the file's query joins the memo,
            # planned on them.
            self.env.cr.execute(SQL("ANALYZE metrika_normalized_phone"))

    @api.autovacuum
    def _gc_metrika_other_phone_rules(self):
        """Numbers normalised with another phonenumbers release are never read: removed."""
        self.env.cr.execute(
            SQL(
                "DELETE FROM metrika_normalized_phone WHERE version != %s",
                PHONE_RULES_VERSION,
            )
        )
