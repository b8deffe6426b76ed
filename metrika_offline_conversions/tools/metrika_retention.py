"""The sync log's retention: which rows are old enough for their company, and deleting them in
short, separately committed batches."""

import time

from odoo.tools import SQL

from .. import const
from .upload_run import commit


def retention_cutoff(alias, now):
    """SQL: the rows of ``alias`` (joined with their company as ``company``) that have not
    changed for their company's sync log retention, at ``now``."""
    return SQL(
        "%s.write_date < %s - GREATEST(COALESCE(company.metrika_log_retention_days, %s), %s) "
        "* INTERVAL '1 day'",
        SQL.identifier(alias),
        now,
        const.DEFAULT_LOG_RETENTION_DAYS,
        const.MIN_LOG_RETENTION_DAYS,
    )


def prune_in_batches(env, prune_batch):
    """Call ``prune_batch(limit)``, which deletes up to ``limit`` rows and returns how many,
    while it fills its batches, for at most LOG_PRUNE_SECONDS. Each batch is committed on its
    own (outside tests), so that no row stays locked for long and a backlog is worked off over
    the following days. Returns the rows deleted."""
    deadline = time.monotonic() + const.LOG_PRUNE_SECONDS
    total = 0
    while True:
        count = prune_batch(const.LOG_PRUNE_BATCH)
        total += count
        if count < const.LOG_PRUNE_BATCH or time.monotonic() >= deadline:
            return total
        commit(env)
