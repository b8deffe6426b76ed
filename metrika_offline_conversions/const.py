"""Odoo-side constants: conversion states, events and defaults shared by models and views."""

DEFAULT_API_URL = "https://api-metrika.yandex.net"
DEFAULT_BATCH_SIZE = 1000
# Odoo reads at most 1,000 records per query: larger batches would cost more queries each.
MAX_BATCH_SIZE = 1000
DEFAULT_UPLOAD_RETENTION_DAYS = 30

# Metrica links conversions to visits for 21 days only; older ones are not worth sending.
CONVERSION_WINDOW_DAYS = 21

# (connect, read) seconds for every call the addon makes.
HTTP_TIMEOUT = (5.0, 60.0)

# How long the cron keeps taking batches before it reports progress and lets the scheduler
# call it again; keeps one run well inside the server's cron time limit.
CRON_TIME_BUDGET_SECONDS = 120

STATE_PENDING = "pending"
STATE_SENT = "sent"
STATE_ERROR = "error"
STATE_SKIPPED = "skipped"
STATE_CANCELLED = "cancelled"

EVENT_IN_PROGRESS = "in_progress"
EVENT_PAID = "paid"
EVENT_CANCELLED = "cancelled"

TRANSPORT_SIMPLE_ORDERS = "simple_orders"
TRANSPORT_OFFLINE = "offline_conversions"

# Queued conversions wake the upload cron at the end of the current slot of this many seconds:
# one trigger serves every transaction committed in the slot.
TRIGGER_SLOT_SECONDS = 30

CRON_XMLID = "metrika_offline_conversions.ir_cron_metrika_upload"
