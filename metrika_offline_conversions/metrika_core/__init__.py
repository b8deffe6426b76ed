"""Framework-free Yandex Metrica client, identifier normalisers and upload-file builders.

Nothing in this package imports Odoo: it is used by the addon and tested on its own.
"""
