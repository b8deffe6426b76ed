from odoo import models

from odoo.addons.metrika_offline_conversions.tools import metrika_capture


class CrmLead(models.Model):
    _inherit = "crm.lead"

    def website_form_input_filter(self, request, values):
        """Any website form that creates a lead: the visitor's identifiers, checked.

        What the form posted (the tag's getClientID answer) is kept only when valid and when
        it comes from a public or portal visitor who consented, like the cookies; junk is
        dropped without a word, so the form still goes through. Runs twice per submission
        (website_crm formats phones with a first pass): it gives the same result both times.
        """
        values = super().website_form_input_filter(request, values)
        posted = {field: values.pop(field, None) for field in metrika_capture.IDENTIFIER_FIELDS}
        values.update(
            metrika_capture.request_identifiers(
                request,
                client_id=posted[metrika_capture.CLIENT_ID_FIELD],
                yclid=posted[metrika_capture.YCLID_FIELD],
            )
        )
        return values
