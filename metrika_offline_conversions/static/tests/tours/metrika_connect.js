/** @odoo-module **/

import { registry } from "@web/core/registry";
import { dashboardSteps } from "@metrika_offline_conversions/../tests/tours/metrika_dashboard";

/**
 * An administrator enters their OAuth application in Settings and presses Connect: the
 * browser goes to the (stand-in) Yandex page, which approves at once and sends it back to the
 * addon's callback, which lands on Settings again with the token's expiry shown. Then the
 * administrator opens the dashboard from the Metrica menu. One tour per series (the Python test
 * picks it): 19.0 wants a step that leaves the page to say so.
 */
function connectSteps({ series19 }) {
    const leavesPage = (step) => (series19 ? { ...step, expectUnloadPage: true } : step);
    return [
        {
            content: "Enter the OAuth application's ID",
            trigger: "div[name=metrika_oauth_client_id] input",
            run: "edit odoo-test-app",
        },
        {
            content: "Enter its secret",
            trigger: "div[name=metrika_oauth_client_secret] input",
            run: "edit odoo-test-app-secret-91b2",
        },
        leavesPage({
            content: "Connect to Yandex",
            trigger: "button[name=action_metrika_oauth_connect]",
            run: "click",
        }),
        {
            content: "Back in Settings, connected: the token's expiry is shown",
            trigger: ".metrika_token_expires_at:not(:empty)",
        },
        ...dashboardSteps(),
    ];
}

registry.category("web_tour.tours").add("metrika_connect_to_yandex", {
    steps: () => connectSteps({ series19: false }),
});

registry.category("web_tour.tours").add("metrika_connect_to_yandex_19", {
    steps: () => connectSteps({ series19: true }),
});
