"""What an upload of the detailed CRM method keeps of its contacts: their file, how many, and
Metrica's answer to them, recorded (and committed) before its orders go."""

import json

from odoo import api, fields, models


class MetrikaUpload(models.Model):
    _inherit = "metrika.upload"

    contacts_count = fields.Integer(string="Contacts", readonly=True)
    contacts_attachment_id = fields.Many2one(
        "ir.attachment", string="Contacts file sent", readonly=True
    )
    contacts_uploading_id = fields.Char(
        string="Metrica uploading ID of the contacts", readonly=True
    )
    contacts_validation_status = fields.Char(string="Contacts validation status", readonly=True)
    contacts_response = fields.Text(string="Metrica's answer to the contacts", readonly=True)
    orders_sent_at = fields.Datetime(
        string="Orders sent on",
        readonly=True,
        help="When the orders were sent, once Metrica had taken their contacts: an orders "
        "upload whose answer was lost is looked for in Metrica's upload history from then on.",
    )

    def _metrika_attach_contacts(self, data, count):
        self.ensure_one()
        attachment = (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": f"metrika_{self.transport}_{self.id}_contacts.csv",
                    "raw": data,
                    "mimetype": "text/csv",
                    "res_model": self._name,
                    "res_id": self.id,
                }
            )
        )
        self.write({"contacts_attachment_id": attachment.id, "contacts_count": count})

    def _metrika_record_contacts(self, uploading):
        """Metrica took the contacts: their answer, and the time the orders go."""
        self.ensure_one()
        uploading = uploading or {}
        self.write(
            {
                "contacts_uploading_id": str(uploading.get("uploading_id") or ""),
                "contacts_validation_status": uploading.get("api_validation_status") or False,
                "contacts_response": json.dumps(uploading, ensure_ascii=False, indent=1),
                "orders_sent_at": fields.Datetime.now(),
            }
        )

    @api.autovacuum
    def _gc_uploaded_contacts_files(self):
        """The contacts files go with the orders files, after the company's retention (kept
        and released ones stay, as their orders files do)."""
        self._metrika_drop_old_files("contacts_attachment_id", "contacts files")
