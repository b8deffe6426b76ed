"""Odoo-side constants: states, reasons, events, Metrica's windows and the retry schedule."""

DEFAULT_API_URL = "https://api-metrika.yandex.net"
DEFAULT_BATCH_SIZE = 1000
# Odoo reads at most 1,000 records per query: larger batches would cost more queries each.
MAX_BATCH_SIZE = 1000
DEFAULT_UPLOAD_RETENTION_DAYS = 30

# (connect, read) seconds for every call the addon makes.
HTTP_TIMEOUT = (5.0, 60.0)
# An upload still "sending" this long after it started has lost its worker (killed, restarted,
# cut off by the cron time limit or a lost database connection): its request is over by now,
# whatever became of it. The worker also holds a row lock on it while it waits for Metrica.
IN_FLIGHT_GRACE_SECONDS = int(sum(HTTP_TIMEOUT)) + 30

# -- Metrica's windows ------------------------------------------------------------------------
# CRM orders: "orders are linked to visits only within 21 days from the current date … this
# does not apply to updates of orders already linked", and "after linking, an order can be
# changed for 111 days from the start of the visit" (https://yandex.ru/dev/metrika/ru/data-import/
# contacts). The visit precedes the order's creation, so 111 days after the creation date the
# update window has certainly closed.
CRM_NEW_ORDER_LINK_DAYS = 21
CRM_LINKED_ORDER_UPDATE_DAYS = 111
# Goal-based offline conversions: "a conversion is added to a visit only if no more than 21
# days passed between the visit and the processing of the file" (https://yandex.ru/dev/metrika/
# en/management/conversion); the visit precedes the conversion's date.
OFFLINE_VISIT_WINDOW_DAYS = 21
# Rows still waiting (errors, a paused company) this close to the end of their window are shown
# as at risk, so that somebody fixes the cause while Metrica still takes them.
AT_RISK_DAYS = 3

# -- Sync log retention -----------------------------------------------------------------------
# Settled conversions and closed uploads are deleted once they have not changed for the
# company's retention. The log is also what the addon remembers of an order: whether Metrica
# already has it (the 21- or the 111-day rule), whether a cancellation is worth sending, whether
# an event reached again is sent again. Those questions only matter while Metrica still takes
# the order, at most CRM_LINKED_ORDER_UPDATE_DAYS after its creation: no company may keep its
# log for less. The default keeps more than a year (a season compared with the last one, a
# yearly audit) at a few hundred bytes a row.
DEFAULT_LOG_RETENTION_DAYS = 400
MIN_LOG_RETENTION_DAYS = CRM_LINKED_ORDER_UPDATE_DAYS
# Rows deleted per statement, each statement committed on its own (row locks held briefly), and
# the seconds one daily vacuum spends on a table before leaving the rest for the next day.
LOG_PRUNE_BATCH = 10000
LOG_PRUNE_SECONDS = 30

# -- Retry schedule ---------------------------------------------------------------------------
# Minutes to wait after the n-th failed attempt (the last value holds for every later one).
# Minutes, not seconds: Metrica's outages last minutes, and Odoo's scheduler wakes once a
# minute. A short outage is over in a few attempts; the cap keeps a long one to two requests an
# hour per company, far inside Metrica's 5,000 requests a day.
RETRY_DELAY_MINUTES = (1, 2, 3, 3, 3, 3, 3, 5, 5, 5, 10, 15, 30)

# Goal-based uploads are polled until Metrica has processed them ("up to about two hours",
# https://yandex.ru/dev/metrika/en/management/offline-conv); after the deadline their rows are
# marked as not confirmed.
POLL_INTERVAL_MINUTES = 10
PROCESSING_DEADLINE_HOURS = 6

# -- Conversion states ------------------------------------------------------------------------
STATE_PENDING = "pending"
# Part of an upload committed before its request: not taken again until that upload is settled.
STATE_SENDING = "sending"
STATE_SENT = "sent"
STATE_ERROR = "error"
STATE_SKIPPED = "skipped"
STATE_CANCELLED = "cancelled"
# Built into a dry-run file (the company's dry run) and kept on its upload, not sent: an
# administrator sends the kept file for real, or the rows are resent.
STATE_KEPT = "kept"
# Nothing changes these rows by themselves any more (a manager's Resend, or the record reaching
# the event again, may bring them back): the sync log's retention may delete them. Never pending
# or sending rows.
SETTLED_STATES = (STATE_SENT, STATE_SKIPPED, STATE_CANCELLED, STATE_ERROR)

# Why a conversion is not sent (yet).
REASON_NO_IDENTIFIER = "no_identifier"
REASON_NO_GOAL = "no_goal"
REASON_LINK_WINDOW = "link_window"
REASON_UPDATE_WINDOW = "update_window"
REASON_VISIT_WINDOW = "visit_window"
REASON_RECORD_DELETED = "record_deleted"
REASON_INVALID_DATA = "invalid_data"
REASON_SETTINGS = "settings"
REASON_AUTH = "auth"
REASON_BAD_REQUEST = "bad_request"
REASON_REFUSED = "refused"
REASON_QUOTA = "quota"
REASON_SERVER = "server"
REASON_NETWORK = "network"
REASON_UNEXPECTED = "unexpected"
# Kept back by the preflight check (metrika_core/preflight.py): Metrica would refuse the row.
REASON_PREFLIGHT = "preflight"
# Reasons of rows that wait for an administrator, not for a retry.
WAITING_FOR_ADMIN_REASONS = (REASON_SETTINGS, REASON_AUTH)

# What Metrica did with a conversion's file ("sent" is not "counted").
RESULT_ACCEPTED = "accepted"
RESULT_PROCESSING = "processing"
RESULT_LINKED = "linked"
RESULT_PARTLY_LINKED = "partly_linked"
RESULT_NOT_LINKED = "not_linked"
RESULT_PARTLY_REFUSED = "partly_refused"
RESULT_UNCONFIRMED = "unconfirmed"

# -- Upload states ----------------------------------------------------------------------------
UPLOAD_SENDING = "sending"
# The request's answer was lost: Metrica may have stored the file.
UPLOAD_UNCONFIRMED = "unconfirmed"
UPLOAD_ACCEPTED = "accepted"
UPLOAD_PROCESSED = "processed"
UPLOAD_NOT_LINKED = "not_linked"
UPLOAD_PROCESSING_TIMEOUT = "processing_timeout"
UPLOAD_FAILED = "failed"
# Found not stored after its answer was lost: its rows were queued again.
UPLOAD_LOST = "lost"
UPLOAD_OPEN_STATES = (UPLOAD_SENDING, UPLOAD_UNCONFIRMED)
# Dry run: the file is built, checked and kept, not sent. An administrator's "Send for real"
# releases it; the cron then sends the kept file once, by the two-phase path.
UPLOAD_KEPT = "kept"
UPLOAD_RELEASED = "released"
# Uploads whose file is still to go: neither their file nor the upload is pruned.
UPLOAD_HELD_STATES = (UPLOAD_KEPT, UPLOAD_RELEASED)

# -- Attribution quality of a lead or an order ------------------------------------------------
# How well Metrica can link it to a visit: with a ClientID and a phone or e-mail (maximum), a
# ClientID only (good), a phone or e-mail only (medium), nothing to link it by (none).
ATTRIBUTION_MAXIMUM = "maximum"
ATTRIBUTION_GOOD = "good"
ATTRIBUTION_MEDIUM = "medium"
ATTRIBUTION_NONE = "none"

# -- Events and upload methods ----------------------------------------------------------------
EVENT_IN_PROGRESS = "in_progress"
EVENT_PAID = "paid"
EVENT_CANCELLED = "cancelled"

TRANSPORT_SIMPLE_ORDERS = "simple_orders"
TRANSPORT_OFFLINE = "offline_conversions"
TRANSPORT_CDP_DETAILED = "cdp_detailed"
TRANSPORT_SELECTION = [
    (TRANSPORT_SIMPLE_ORDERS, "CRM orders (simplified)"),
    (TRANSPORT_OFFLINE, "Goal-based offline conversions"),
    (TRANSPORT_CDP_DETAILED, "CRM contacts and orders (detailed)"),
]

# When a sale order is first sent.
ORDER_EVENT_CONFIRMED = "confirmed"
ORDER_EVENT_CREATED = "created"

# A lead's outcome, as 18.0 tells it (stage and archiving).
LEAD_OPEN = "open"
LEAD_WON = "won"
LEAD_LOST = "lost"

# Queued conversions wake the upload cron at once, and once more at the end of the current slot
# of this many seconds, for the transactions committed while it ran: one pair of triggers per
# slot and process, instead of one per confirmed order.
TRIGGER_SLOT_SECONDS = 10

CRON_XMLID = "metrika_offline_conversions.ir_cron_metrika_upload"
# The activity type of the administrators' alerts that sending waits for a settings fix: their
# identity (with the company's uploads), whatever language their summary was written in.
SETTINGS_ALERT_ACTIVITY_TYPE = "metrika_offline_conversions.mail_activity_type_settings_alert"

# -- Connection health and "Connect to Yandex" ------------------------------------------------
# The last connection check of a company (metrika.connection.health).
HEALTH_OK = "ok"
HEALTH_FAILED = "failed"
# The check could not run (network, quota, Metrica down): says nothing about the settings.
HEALTH_UNREACHABLE = "unreachable"
# The administrators' activity while a check fails: found again by this type and the company's
# health record, closed when a check passes.
HEALTH_ALERT_ACTIVITY_TYPE = "metrika_offline_conversions.mail_activity_type_health_alert"
# Not a check of Metrica's: the token expires within TOKEN_WARNING_DAYS and cannot be refreshed.
PROBLEM_TOKEN_EXPIRING = "token_expiring"
DEFAULT_OAUTH_URL = "https://oauth.yandex.ru"
OAUTH_CALLBACK_PATH = "/metrika_offline_conversions/oauth/callback"
OAUTH_FLOW_CODE = "code"
OAUTH_FLOW_DEVICE = "device"
# A started connection the administrator did not finish is forgotten after this (Yandex's codes
# live 10 minutes).
OAUTH_REQUEST_MINUTES = 10
# Yandex recommends refreshing long-lived tokens every three months (refresh-client): a token
# is refreshed once this close to its expiry, and the administrators warned this close to it
# when it cannot be.
TOKEN_REFRESH_DAYS = 30
TOKEN_WARNING_DAYS = 7
# -- The detailed CRM method (contacts, orders and the order status mapping) ------------------
# Our order statuses in Metrica's mapping (schema/order_statuses): ids of 1-255 characters of
# letters, digits, "_", "-" and ":". A CRM stage's id is the prefix and the stage's database id.
STATUS_QUOTATION = "odoo_quotation"
STATUS_SALES_ORDER = "odoo_sales_order"
STATUS_PAID = "odoo_paid"
STATUS_CANCELLED = "odoo_cancelled"
STATUS_LEAD_LOST = "odoo_lead_lost"
STATUS_LEAD_SPAM = "odoo_lead_spam"
STATUS_STAGE_PREFIX = "odoo_stage_"
# A contact's uniq_id: its commercial partner, or the lead itself when the lead has no partner.
CONTACT_PARTNER_PREFIX = "partner-"
CONTACT_LEAD_PREFIX = "lead-"
# Identifiers of each kind sent per contact at most (the newest records first): a customer with
# thousands of orders still makes one short line.
CONTACT_MAX_IDENTIFIERS = 100
# A lost orders upload is looked for among the uploads Metrica lists from this long before its
# request started (Metrica's clock against ours), the ones already accounted for left out.
CDP_LOOKUP_CLOCK_MARGIN_SECONDS = 60
# -- Conversion Centre link -------------------------------------------------------------------
# Random bytes of the secret in the link's address (secrets.token_urlsafe: 43 characters).
CENTRE_SECRET_BYTES = 32
CENTRE_ROUTE = "/metrika/conversion-centre"
# Rows fetched at a time from the query the file is streamed from: memory holds one batch.
CENTRE_FETCH_ROWS = 5000
# Phone numbers normalised per committed batch by the link's preparation cron.
CENTRE_PHONE_BATCH_ROWS = 5000
# Why a conversion is not sent through the API: its company only serves the Centre link.
REASON_CENTRE_ONLY = "centre_only"
# -- Dashboard --------------------------------------------------------------------------------
# A conversion still waiting this long after it was queued is shown as stuck: the upload cron
# sends a row within minutes, and its retries wait at most half an hour each.
STUCK_AFTER_HOURS = 1
# -- History sent at connection ---------------------------------------------------------------
# The history looks at leads and orders created at most this long ago: Metrica takes nothing
# older, not even an update of an order it linked (CRM_LINKED_ORDER_UPDATE_DAYS).
HISTORY_LOOKBACK_DAYS = CRM_LINKED_ORDER_UPDATE_DAYS
# Who may queue the history (checked on the server, not only by the button's groups).
# Whether the history is still to offer after sending was first turned on (res.company).
HISTORY_TO_OFFER = "to_offer"
HISTORY_OFFERED = "offered"
HISTORY_GROUPS = ("metrika_offline_conversions.group_metrika_manager", "base.group_system")
