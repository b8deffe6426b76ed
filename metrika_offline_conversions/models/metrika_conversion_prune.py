import logging

from odoo import api, fields, models
from odoo.tools import SQL

from .. import const
from ..tools.metrika_retention import prune_in_batches, retention_cutoff

_logger = logging.getLogger(__name__)


class MetrikaConversion(models.Model):
    _inherit = "metrika.conversion"

    @api.autovacuum
    def _gc_settled_conversions(self):
        """Delete the settled conversions (sent, skipped, cancelled, in error) that have not
        changed for their company's retention and that Metrica no longer takes. Pending and
        sending rows are never deleted."""
        total = prune_in_batches(self.env, self._metrika_prune_batch)
        if total:
            _logger.info("Metrica: removed %s settled conversions from the sync log", total)

    @api.model
    def _metrika_prune_batch(self, limit):
        """Delete up to ``limit`` prunable conversions; return how many.

        One statement, with their lines in the uploads' many2many (ON DELETE CASCADE). Rows a
        transaction holds (a record reaching their event again) are skipped, not waited for.
        The batch is chosen once (a materialized CTE): as ``id IN (SELECT ... LIMIT n)``,
        PostgreSQL may scan the subquery again for each row of a nested loop, and each scan,
        skipping the rows the statement already deleted, brings n more (seen on Odoo 19.0's
        test database: 5 rows deleted by a batch of 2).
        A plain log table: no attachments, messages or external ids to delete with the rows.
        """
        self.env.flush_all()
        now = fields.Datetime.now()
        self.env.cr.execute(
            SQL(
                """WITH doomed AS MATERIALIZED (
                       SELECT conversion.id
                         FROM metrika_conversion conversion
                         JOIN res_company company ON company.id = conversion.company_id
                        WHERE conversion.state IN %(settled)s
                          AND %(old)s
                          AND (conversion.window_closes_at IS NULL
                               OR conversion.window_closes_at < %(now)s)
                        LIMIT %(limit)s
                          FOR UPDATE OF conversion SKIP LOCKED)
                   DELETE FROM metrika_conversion USING doomed
                    WHERE metrika_conversion.id = doomed.id""",
                settled=const.SETTLED_STATES,
                old=retention_cutoff("conversion", now),
                now=now,
                limit=limit,
            )
        )
        count = self.env.cr.rowcount
        if count:
            # Deleted by SQL: what the cache still holds of them (rows, uploads' lines, records'
            # counts) is gone.
            self.env.invalidate_all()
        return count
