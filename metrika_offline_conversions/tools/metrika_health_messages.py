"""What each failed connection check means and what to do about it, in the reader's language.

The check (metrika_core/health.py) answers with problem codes and values; this table words
them. A health record keeps the codes and values, not the text, so every reader sees it in
their own language.
"""

from odoo.tools.translate import LazyTranslate

from .. import const
from ..metrika_core import health

_lt = LazyTranslate(__name__)

PROBLEM_TEXTS = {
    health.PROBLEM_TOKEN: _lt(
        "Yandex Metrica refuses the OAuth token (%(detail)s): it is invalid, expired or revoked. "
        'Press "Connect to Yandex" again, or paste a new token.'
    ),
    health.PROBLEM_COUNTER_ACCESS: _lt(
        "The token cannot read counter %(counter)s (%(detail)s). Check the counter ID, give the "
        "token's Yandex account access to this counter, and make sure the token has the "
        "permission metrika:read."
    ),
    health.PROBLEM_COUNTER_NOT_FOUND: _lt(
        "Yandex Metrica has no counter %(counter)s. Check the counter ID in Settings."
    ),
    health.PROBLEM_UPLOAD_SCOPE: _lt(
        "The token may read counter %(counter)s but not upload to it (%(detail)s). Give the "
        "OAuth application the permission metrika:offline_data (or metrika:write), then connect "
        "again or paste a new token."
    ),
    health.PROBLEM_TIME_ZONE: _lt(
        "The counter's time zone is now %(counter_time_zone)s, but the files are written in "
        '%(files_time_zone)s. Press "Test connection" so that the next files use the '
        "counter's time zone."
    ),
    health.PROBLEM_GOAL_UNKNOWN: _lt(
        'Counter %(counter)s has no goal with the identifier "%(goal)s". Create a JavaScript '
        "event goal with exactly this identifier, or enter the identifier of an existing one."
    ),
    health.PROBLEM_GOAL_KIND: _lt(
        'The goal "%(name)s" with the identifier "%(goal)s" is of the kind "%(kind)s": goal-based '
        "offline conversions reach only JavaScript event goals. Enter the identifier of a "
        "JavaScript event goal."
    ),
    const.PROBLEM_TOKEN_EXPIRING: _lt(
        "The OAuth token expires on %(expires)s and cannot be refreshed (%(detail)s). Press "
        '"Connect to Yandex" again before then.'
    ),
}
# Said after an unknown goal when a goal with a close identifier exists.
GOAL_HINT = _lt('Did you mean "%(name)s"?')


def problem_text(env, code, values):
    """The message of one problem (``code`` and its ``values``) in ``env``'s language."""
    lang = env.lang or "en_US"
    text = PROBLEM_TEXTS[code]._translate(lang) % {"detail": "-", "counter": "-", **values}
    if code == health.PROBLEM_GOAL_UNKNOWN and values.get("name"):
        text += " " + GOAL_HINT._translate(lang) % values
    return text
