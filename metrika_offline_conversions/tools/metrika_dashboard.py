"""The dashboard's figures are read from materialized views: adding up a million conversions
(or every order and lead) each time somebody opens a pivot would take seconds. A cron brings
them up to date (``refresh_views``); a module update rebuilds them from their definition."""

from odoo.tools import SQL


def rebuild_materialized_view(cr, name, query, indexes=()):
    """(Re)create the materialized view ``name`` from ``query`` (an SQL), with a unique index
    on ``id`` (a concurrent refresh needs one) and an index on each of ``indexes``."""
    cr.execute(SQL("DROP MATERIALIZED VIEW IF EXISTS %s CASCADE", SQL.identifier(name)))
    cr.execute(SQL("CREATE MATERIALIZED VIEW %s AS (%s)", SQL.identifier(name), query))
    cr.execute(
        SQL(
            "CREATE UNIQUE INDEX %s ON %s (id)",
            SQL.identifier(f"{name}_id_index"),
            SQL.identifier(name),
        )
    )
    for column in indexes:
        cr.execute(
            SQL(
                "CREATE INDEX %s ON %s (%s)",
                SQL.identifier(f"{name}_{column}_index"),
                SQL.identifier(name),
                SQL.identifier(column),
            )
        )
    # Statistics at once: until autovacuum gets to the view, the planner would expect a few
    # hundred rows and take the wrong plan (a measured 4 times slower on the benchmark's log).
    cr.execute(SQL("ANALYZE %s", SQL.identifier(name)))


def drop_view(cr, name):
    """Drop the view ``name``, plain or materialized (an earlier definition of a report)."""
    cr.execute("SELECT relkind FROM pg_class WHERE relname = %s", [name])
    row = cr.fetchone()
    if row and row[0] == "v":
        cr.execute(SQL("DROP VIEW %s CASCADE", SQL.identifier(name)))
    elif row and row[0] == "m":
        cr.execute(SQL("DROP MATERIALIZED VIEW %s CASCADE", SQL.identifier(name)))


def refresh_views(cr, names):
    """Bring the materialized views up to date without blocking their readers."""
    for name in names:
        cr.execute(SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY %s", SQL.identifier(name)))
        cr.execute(SQL("ANALYZE %s", SQL.identifier(name)))
