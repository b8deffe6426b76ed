{
    "name": "Yandex Metrica Offline Conversions: Shop",
    "summary": "Shop carts and orders get the visitor's Metrica ClientID and yclid",
    "version": "1.0.0",
    "category": "Website/Website",
    "license": "LGPL-3",
    "author": "metrika_offline_conversions contributors",
    "depends": ["metrika_offline_conversions_website", "website_sale"],
    "assets": {
        "web.assets_tests": [
            "metrika_offline_conversions_website_sale/static/tests/tours/*.js",
        ],
    },
    "auto_install": True,
    "installable": True,
}
