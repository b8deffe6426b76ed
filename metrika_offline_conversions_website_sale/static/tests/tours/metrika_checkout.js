/** @odoo-module **/

import { registry } from "@web/core/registry";
import * as tourUtils from "@website_sale/js/tours/tour_utils";

/**
 * A public visitor buys the free product through the real shop pages. One tour per Odoo series
 * (the Python test picks it): 19.0 wants every step that leaves the page to say so
 * (`expectUnloadPage`), a key 18.0 refuses; and 19.0 ends a free order on its confirmation
 * page, 18.0 on the portal order.
 */
function checkoutSteps({ series19 }) {
    const leavesPage = (step) => (series19 ? { ...step, expectUnloadPage: true } : step);
    return [
        // Both series' helpers take the option; 18.0 ignores it.
        ...tourUtils.addToCart({ productName: "Metrika Sofa", expectUnloadPage: true }),
        tourUtils.goToCart(),
        tourUtils.goToCheckout(),
        ...tourUtils.fillAdressForm(
            {
                name: "Anna Smirnova",
                phone: "+7 999 555 11 11",
                email: "anna@example.ru",
                street: "Tverskaya 1",
                city: "Moscow",
                zip: "125009",
            },
            true
        ),
        tourUtils.confirmOrder(),
        leavesPage({
            content: "Confirm the free order",
            trigger: "form[name=o_wsale_confirm_order] button[name=o_payment_submit_button]",
            run: "click",
        }),
        {
            content: "The customer lands on the confirmed order",
            trigger: "#portal_sale_content, .o_portal_sale_sidebar, #order_name",
        },
    ];
}

registry.category("web_tour.tours").add("metrika_public_checkout", {
    url: "/shop",
    steps: () => checkoutSteps({ series19: false }),
});

registry.category("web_tour.tours").add("metrika_public_checkout_19", {
    url: "/shop",
    steps: () => checkoutSteps({ series19: true }),
});
