/** @odoo-module **/

import { registry } from "@web/core/registry";

const URL_FIELD = ".o_metrika_centre_link_url";
const ROUTE = "/metrika/conversion-centre/";
// Steps that wait for the settings page to load or save: a loaded test machine may take longer
// than a step's default 10 seconds.
const PAGE_LOAD_MS = 60000;
// The first address, kept for the step after the rotation, which runs in a reloaded page.
const FIRST_ADDRESS_KEY = "metrika_centre_link_first_address";
const COPIED_KEY = "metrika_centre_link_copied";

function linkAddress() {
    const address = document.querySelector(`${URL_FIELD} span`)?.textContent.trim();
    if (!address || !address.includes(ROUTE) || !address.endsWith(".csv")) {
        throw new Error(`No Conversion Centre link address shown: ${address}`);
    }
    return address;
}

/**
 * An administrator turns the link on, copies its address and rotates the secret. Each tour has a
 * variant per Odoo series, which the Python test picks: 19.0 wants the step that reloads the page
 * (the rotation) to say so (`expectUnloadPage`), a key 18.0 refuses.
 */
function centreLinkSteps({ series19 }) {
    const reloads = (step) => (series19 ? { ...step, expectUnloadPage: true } : step);
    return [
        {
            content: "Turn the Conversion Centre link on",
            trigger: "#metrika_centre_link input[type=checkbox]",
            timeout: PAGE_LOAD_MS,
            run: "click",
        },
        {
            content: "Save the settings",
            trigger: ".o_form_button_save:not(:disabled)",
            run: "click",
        },
        {
            content: "The link's address is shown",
            trigger: `${URL_FIELD} span:contains('${ROUTE}')`,
            timeout: PAGE_LOAD_MS,
            run() {
                sessionStorage.setItem(FIRST_ADDRESS_KEY, linkAddress());
                // Gone once the rotation has reloaded the page.
                document.body.classList.add("o_metrika_before_rotation");
            },
        },
        {
            content: "Copy the address",
            trigger: `${URL_FIELD} .o_clipboard_button`,
            async run(helpers) {
                // Headless Chromium refuses the clipboard to pages: what the button writes is
                // kept where the next step reads it.
                navigator.clipboard.writeText = async (text) => {
                    sessionStorage.setItem(COPIED_KEY, text);
                };
                await helpers.click();
            },
        },
        {
            content: "The address was copied",
            trigger: ".o_popover:contains('Copied')",
            run() {
                const copied = sessionStorage.getItem(COPIED_KEY);
                const shown = sessionStorage.getItem(FIRST_ADDRESS_KEY);
                if (!shown || copied !== shown) {
                    throw new Error(`Copied "${copied}" instead of "${shown}"`);
                }
            },
        },
        {
            content: "Rotate the secret",
            trigger: "button[name=action_metrika_rotate_centre_secret]",
            run: "click",
        },
        reloads({
            content: "Confirm: the old address stops working",
            trigger: ".modal-footer .btn-primary",
            run: "click",
        }),
        {
            content: "A new address is shown",
            trigger: `body:not(.o_metrika_before_rotation) ${URL_FIELD} span:contains('${ROUTE}')`,
            timeout: PAGE_LOAD_MS,
            run() {
                const first = sessionStorage.getItem(FIRST_ADDRESS_KEY);
                if (!first || linkAddress() === first) {
                    throw new Error("The address did not change when the secret was rotated");
                }
            },
        },
    ];
}

for (const [suffix, options] of [
    ["", { series19: false }],
    ["_19", { series19: true }],
]) {
    registry.category("web_tour.tours").add(`metrika_centre_link${suffix}`, {
        steps: () => centreLinkSteps(options),
    });
}
