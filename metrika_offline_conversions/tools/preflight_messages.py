"""What each preflight rule (metrika_core/preflight.py) means for the user: the reason a
conversion kept back by it shows in the sync log."""

from odoo.tools.translate import LazyTranslate

from ..metrika_core import preflight

_lt = LazyTranslate(__name__)

RULE_TEXTS = {
    preflight.RULE_DATE_MISSING: _lt("its date is missing"),
    preflight.RULE_DATE_BEFORE_1970: _lt("its date is before 1970, which Metrica does not take"),
    preflight.RULE_DATE_IN_FUTURE: _lt("its date is in the future"),
    preflight.RULE_DATE_TOO_OLD: _lt("its date is older than Metrica's window for this file"),
    preflight.RULE_NO_IDENTIFIER: _lt("it has no identifier Metrica can link it by"),
    preflight.RULE_IDENTIFIER_FORMAT: _lt("an identifier is not in the form Metrica requires"),
    preflight.RULE_STATUS: _lt("its status is not one Metrica knows"),
    preflight.RULE_GOAL: _lt("a goal identifier contains characters Metrica refuses"),
    preflight.RULE_VALUE_RANGE: _lt("an amount is negative or not a number"),
    preflight.RULE_CURRENCY: _lt("its currency is not an ISO 4217 code"),
    preflight.RULE_ENCODING: _lt("a text cannot be written in a UTF-8 file"),
    preflight.RULE_FILE_SIZE: _lt("the file would be larger than the 1 GB Metrica takes"),
}


def refusal_text(env, rule, detail):
    """The sync log's reason for a row the preflight check kept back."""
    return env._(
        "Kept back by the preflight check: %(rule)s (%(detail)s). The other rows of its file "
        "are not held up by it.",
        rule=env._(RULE_TEXTS[rule]),
        detail=detail,
    )
