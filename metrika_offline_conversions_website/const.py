"""Constants of the website bridge."""

# Which rule decides when visitors' identifiers are captured (shown in Settings).
CONSENT_RULE_ASKED = "asked"
CONSENT_RULE_NOT_ASKED = "not_asked"
