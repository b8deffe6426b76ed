/** @odoo-module **/

import publicWidget from "@web/legacy/js/public/public_widget";

// The field the server reads; it wins over the _ym_uid cookie when valid.
const FIELD_NAME = "metrika_client_id";
const CLIENT_ID = /^[1-9][0-9]{0,19}$/;

/**
 * Writes the visitor's ClientID, as the Metrica tag gives it (getClientID), into website forms
 * that create leads, so the lead gets it even when the tag's cookie is not readable.
 */
publicWidget.registry.MetrikaClientIdField = publicWidget.Widget.extend({
    selector: 'form[data-model_name="crm.lead"]',
    events: {
        focusin: "_askClientId",
    },

    start() {
        this._askClientId();
        return this._super(...arguments);
    },

    destroy() {
        this.el.querySelector(`input[name="${FIELD_NAME}"][data-metrika]`)?.remove();
        this._super(...arguments);
    },

    _askClientId() {
        const counter = Number(document.getElementById("o_metrika_counter")?.dataset.counter);
        if (!counter || typeof window.ym !== "function") {
            return;
        }
        window.ym(counter, "getClientID", (clientId) => this._setClientId(clientId));
    },

    _setClientId(clientId) {
        const value = String(clientId ?? "");
        if (!CLIENT_ID.test(value)) {
            return;
        }
        let input = this.el.querySelector(`input[name="${FIELD_NAME}"]`);
        if (!input) {
            input = document.createElement("input");
            input.type = "hidden";
            input.name = FIELD_NAME;
            input.dataset.metrika = "1";
            this.el.appendChild(input);
        }
        input.value = value;
    },
});

export default publicWidget.registry.MetrikaClientIdField;
