from odoo import models
from odoo.http import request

from odoo.addons.metrika_offline_conversions.tools import metrika_capture


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _frontend_pre_dispatch(cls):
        result = super()._frontend_pre_dispatch()
        cls._metrika_remember_yclid()
        return result

    @classmethod
    def _metrika_remember_yclid(cls):
        """A landing from a Direct ad (``?yclid=``) is remembered for 90 days in a cookie.

        The cookie is an optional one: where the website asks for consent and the visitor has
        not accepted optional cookies, Odoo sends it already expired.
        """
        httprequest = request.httprequest
        yclid = metrika_capture.clean_yclid(httprequest.args.get(metrika_capture.YCLID_PARAM))
        if (
            not yclid
            or httprequest.cookies.get(metrika_capture.YCLID_COOKIE) == yclid
            or not metrika_capture.is_visitor(request.env)
        ):
            return
        request.future_response.set_cookie(
            metrika_capture.YCLID_COOKIE,
            yclid,
            max_age=metrika_capture.YCLID_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            cookie_type="optional",
        )
