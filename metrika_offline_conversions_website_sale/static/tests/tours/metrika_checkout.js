/** @odoo-module **/

import { registry } from "@web/core/registry";
import * as tourUtils from "@website_sale/js/tours/tour_utils";

registry.category("web_tour.tours").add("metrika_public_checkout", {
    url: "/shop",
    steps: () => [
        ...tourUtils.addToCart({ productName: "Metrika Sofa" }),
        tourUtils.goToCart(),
        tourUtils.goToCheckout(),
        ...tourUtils.fillAdressForm({
            name: "Anna Smirnova",
            phone: "+7 999 555 11 11",
            email: "anna@example.ru",
            street: "Tverskaya 1",
            city: "Moscow",
            zip: "125009",
        }),
        tourUtils.confirmOrder(),
        {
            content: "Confirm the free order",
            trigger: "form[name=o_wsale_confirm_order] button[name=o_payment_submit_button]",
            run: "click",
        },
        {
            content: "The customer lands on the confirmed order",
            trigger: "#portal_sale_content, .o_portal_sale_sidebar",
        },
    ],
});
