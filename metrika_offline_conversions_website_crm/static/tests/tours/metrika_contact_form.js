/** @odoo-module **/

import { registry } from "@web/core/registry";

/**
 * Each tour has a variant per Odoo series, which the Python test picks: 19.0 wants the step that
 * leaves the page (sending the form) to say so (`expectUnloadPage`), a key 18.0 refuses.
 */
function fillAndSend(description, { series19 }) {
    const leavesPage = (step) => (series19 ? { ...step, expectUnloadPage: true } : step);
    return [
        {
            content: "Name",
            trigger: "form[data-model_name='crm.lead'] input[name=contact_name]",
            run: "edit Anna Smirnova",
        },
        {
            content: "E-mail",
            trigger: "input[name=email_from]",
            run: "edit anna@example.ru",
        },
        {
            content: "Subject",
            trigger: "input[name=name]",
            run: "edit A sofa for the office",
        },
        {
            content: "Question",
            trigger: "textarea[name=description]",
            run: `edit ${description}`,
        },
        leavesPage({
            content: "Send the form",
            trigger: ".s_website_form_send",
            run: "click",
        }),
        {
            content: "The visitor sees the thank-you page",
            trigger: "#wrap:has(h1:contains('Thank You!'))",
        },
    ];
}

for (const [suffix, options] of [
    ["", { series19: false }],
    ["_19", { series19: true }],
]) {
    registry.category("web_tour.tours").add(`metrika_contact_form_cookie${suffix}`, {
        url: "/contactus",
        steps: () => fillAndSend("### METRIKA COOKIE ###", options),
    });

    registry.category("web_tour.tours").add(`metrika_contact_form_get_client_id${suffix}`, {
        url: "/contactus",
        steps: () => [
            {
                content: "The page's Metrica tag knows the visitor (a stand-in for tag.js)",
                trigger: "form[data-model_name='crm.lead']",
                run() {
                    window.ym = (counter, method, callback) => {
                        if (method === "getClientID") {
                            callback("1700000000123456789");
                        }
                    };
                },
            },
            ...fillAndSend("### METRIKA GETCLIENTID ###", options),
        ],
    });

    registry.category("web_tour.tours").add(`metrika_contact_form_inserted_tag${suffix}`, {
        url: "/contactus",
        steps: () => [
            {
                content: "The inserted tag has answered getClientID into the form",
                trigger: "form[data-model_name='crm.lead']:has(input[name=metrika_client_id])",
            },
            ...fillAndSend("### METRIKA TAG ###", options),
        ],
    });
}
