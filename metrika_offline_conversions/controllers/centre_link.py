"""The Conversion Centre link: the file Direct's Conversion Centre pulls, behind a secret.

``GET|HEAD /metrika/conversion-centre/<secret>.csv``. The company is found by comparing the
secret in constant time (tools/centre_link.py); anything else is a 404. The body is a generator
that reads the orders batch by batch with its own cursor (the request's cursor is closed once the
handler returns, before the body is sent) and logs the fetch when the file is done.
"""

import hashlib
import logging
import re
import time
from datetime import datetime, timezone

from werkzeug.http import http_date, parse_date, parse_etags

from odoo import SUPERUSER_ID, api, http
from odoo.http import request
from odoo.modules.registry import Registry

from .. import const
from ..metrika_core.formats import centre_link as centre_format
from ..tools import centre_link

_logger = logging.getLogger(__name__)

_SECRET_IN_PATH = re.compile(re.escape(const.CENTRE_ROUTE) + r"/[^/\s?#]+\.csv")
_SECRET_HIDDEN = const.CENTRE_ROUTE + "/***.csv"


class _HideLinkSecret(logging.Filter):
    """The link's secret is its address: the access log (werkzeug's logger, which names every
    request's path) shows the address without it. Odoo filters that logger too (netsvc)."""

    def filter(self, record):
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_IN_PATH.sub(_SECRET_HIDDEN, arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _SECRET_IN_PATH.sub(_SECRET_HIDDEN, record.msg)
        return True


logging.getLogger("werkzeug").addFilter(_HideLinkSecret())


class MetrikaCentreLink(http.Controller):
    @http.route(
        f"{const.CENTRE_ROUTE}/<string:secret>.csv",
        type="http",
        auth="public",
        methods=["GET", "HEAD"],
        csrf=False,
        save_session=False,
        sitemap=False,
    )
    def metrika_centre_file(self, secret, **_kwargs):
        env = request.env
        company = centre_link.find_company(env, secret)
        if not company:
            # Not logged with the secret: a wrong link is no company's fetch.
            _logger.info("Metrica: Conversion Centre link with an unknown secret")
            raise request.not_found()
        method = request.httprequest.method
        now = datetime.now(timezone.utc)
        hashed = company.metrika_hash_identifiers
        time_zone = centre_link.company_time_zone(company)
        count, changed = centre_link.file_validators(env, company.id, now)
        last_modified = (changed or now).replace(microsecond=0, tzinfo=timezone.utc)
        etag = hashlib.sha256(
            repr(
                (count, last_modified.isoformat(), hashed, time_zone, now.date().isoformat())
            ).encode()
        ).hexdigest()[:32]
        headers = [
            ("Content-Type", "text/csv; charset=utf-8"),
            ("Cache-Control", "no-cache, private"),
            ("ETag", '"%s"' % etag),
            ("Last-Modified", http_date(last_modified)),
            ("X-Robots-Tag", "noindex"),
        ]
        fetch = {
            "company_id": company.id,
            "fetched_at": now.replace(tzinfo=None, microsecond=0),
            "method": method,
            "remote_address": request.httprequest.remote_addr,
        }
        if _not_modified(request.httprequest, etag, last_modified):
            _log_fetch(env, {**fetch, "http_status": 304, "complete": True})
            return request.make_response(b"", headers=headers[2:], status=304)
        if method == "HEAD":
            _log_fetch(env, {**fetch, "http_status": 200, "complete": True})
            return request.make_response(b"", headers=headers)
        body = _stream(
            env.cr.dbname,
            company.id,
            now,
            time_zone,
            hashed,
            company._metrika_phone_region(),
            fetch,
        )
        response = request.make_response(body, headers=headers)
        response.direct_passthrough = True
        return response


def _not_modified(httprequest, etag, last_modified):
    if_none_match = httprequest.headers.get("If-None-Match")
    if if_none_match:
        return parse_etags(if_none_match).contains_weak(etag)
    since = parse_date(httprequest.headers.get("If-Modified-Since"))
    return since is not None and last_modified <= since


def _log_fetch(env, values):
    env["metrika.centre.fetch"].sudo().create(values)


def _stream(dbname, company_id, now, time_zone, hashed, region, fetch):
    """The file's bytes, chunk by chunk, read with a cursor of its own; the fetch is logged at
    the end, also when the client stops reading."""
    started = time.monotonic()
    served = left_out = 0
    complete = False

    def rejected(_order, _reason):
        nonlocal left_out
        left_out += 1

    def written(count):
        nonlocal served
        served += count

    with Registry(dbname).cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        try:
            orders = centre_link.iter_orders(env, company_id, now, region)
            chunks = centre_format.iter_centre_csv(
                orders, time_zone, now, hashed=hashed, on_rejected=rejected, on_written=written
            )
            yield from chunks
            complete = True
        except Exception:
            # The phone numbers remembered so far go with the failed transaction.
            cr.rollback()
            raise
        finally:
            # A client that stops reading closes the generator: what it got is logged as such
            # (and the phone numbers normalised meanwhile are kept).
            env["metrika.centre.fetch"].create(
                {
                    **fetch,
                    "http_status": 200,
                    "rows_served": served,
                    "rows_left_out": left_out,
                    "complete": complete,
                    "duration": time.monotonic() - started,
                }
            )
            # The body is sent after the request's transaction ended: this cursor is the
            # stream's own, and the log and the phone memo are all it writes.
            cr.commit()  # pylint: disable=invalid-commit
