"""YandexOAuthClient against the stand-in's Yandex OAuth, over real sockets: both flows, the
refresh, and the stand-in's strictness (PKCE S256, single-use codes, revoked refresh tokens)."""

import logging
import urllib.parse

import pytest
import requests

from metrika_core.client import MetrikaClient
from metrika_core.errors import MetrikaConfigError, MetrikaTransportError
from metrika_core.oauth import (
    OAuthClientError,
    OAuthGrantError,
    OAuthPendingError,
    YandexOAuthClient,
    authorize_url,
    new_pkce_pair,
    new_state,
    pkce_challenge,
)

APP_ID = "app-id-1"
APP_SECRET = "app-secret-s3cr3t"
REDIRECT = "https://odoo.example/metrika_offline_conversions/oauth/callback"


@pytest.fixture
def oauth(api):
    api.add_oauth_client(APP_ID, APP_SECRET, redirect_uris=[REDIRECT])
    with YandexOAuthClient(APP_ID, APP_SECRET, base_url=api.url, timeout=(2, 5)) as client:
        yield client


def approve(api, verifier_challenge, state="s1", redirect_uri=REDIRECT):
    """Open the authorization page as the administrator's browser would; return the code."""
    url = authorize_url(
        api.url, APP_ID, redirect_uri=redirect_uri, state=state, code_challenge=verifier_challenge
    )
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = urllib.parse.urlsplit(answer.headers["Location"])
    assert location.scheme + "://" + location.netloc + location.path == redirect_uri
    query = dict(urllib.parse.parse_qsl(location.query))
    assert query["state"] == state
    return query["code"]


def test_pkce_challenge_is_rfc7636_s256():
    # RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # noqa: S105
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    first, second = new_pkce_pair(), new_pkce_pair()
    assert first != second
    assert 43 <= len(first[0]) <= 128
    assert new_state() != new_state()


def test_authorization_code_flow_gives_a_token_metrica_accepts(api, oauth):
    verifier, challenge = new_pkce_pair()
    code = approve(api, challenge)
    tokens = oauth.exchange_code(code, code_verifier=verifier, redirect_uri=REDIRECT)
    assert tokens.access_token and tokens.refresh_token
    assert tokens.expires_at is not None
    assert "***" in repr(tokens) and tokens.access_token not in repr(tokens)
    with MetrikaClient(tokens.access_token, 12345, base_url=api.url) as client:
        assert client.get_counter()["id"] == 12345
    request = api.last_request("/token")
    assert request.header("Authorization").startswith("Basic ")
    assert APP_SECRET.encode() not in request.body


def test_a_code_is_single_use(api, oauth):
    verifier, challenge = new_pkce_pair()
    code = approve(api, challenge)
    oauth.exchange_code(code, code_verifier=verifier, redirect_uri=REDIRECT)
    with pytest.raises(OAuthGrantError) as caught:
        oauth.exchange_code(code, code_verifier=verifier, redirect_uri=REDIRECT)
    assert caught.value.error_type == "invalid_grant"
    assert not caught.value.retryable


def test_a_wrong_verifier_is_refused_and_spends_the_code(api, oauth):
    verifier, challenge = new_pkce_pair()
    code = approve(api, challenge)
    with pytest.raises(OAuthGrantError):
        oauth.exchange_code(code, code_verifier=new_pkce_pair()[0], redirect_uri=REDIRECT)
    with pytest.raises(OAuthGrantError):
        oauth.exchange_code(code, code_verifier=verifier, redirect_uri=REDIRECT)


def test_an_unregistered_redirect_address_gets_no_code(api, oauth):
    url = authorize_url(
        api.url, APP_ID, redirect_uri="https://evil.example/cb", state="s", code_challenge="x"
    )
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_a_wrong_secret_is_a_client_error_that_never_shows_the_secret(api, caplog):
    api.add_oauth_client(APP_ID, APP_SECRET)
    caplog.set_level(logging.DEBUG)
    with YandexOAuthClient(APP_ID, "wrong-secret-xyz", base_url=api.url) as client:
        with pytest.raises(OAuthClientError) as caught:
            client.refresh("1:whatever")
    assert "wrong-secret-xyz" not in str(caught.value) + repr(caught.value) + caplog.text
    assert "wrong-secret-xyz" not in repr(client)


def test_device_flow_is_pending_until_approved_then_gives_tokens_once(api, oauth):
    device = oauth.request_device_code()
    assert device.verification_url == api.url + "/device"
    assert device.user_code and device.interval > 0
    assert device.device_code not in repr(device)
    with pytest.raises(OAuthPendingError) as caught:
        oauth.poll_device_token(device.device_code)
    assert caught.value.retryable
    api.approve_device(device.user_code)
    tokens = oauth.poll_device_token(device.device_code)
    assert tokens.access_token in api.issued_tokens
    with pytest.raises(OAuthGrantError):
        oauth.poll_device_token(device.device_code)


def test_refresh_gives_a_new_pair_and_spends_the_old_refresh_token(api, oauth):
    verifier, challenge = new_pkce_pair()
    first = oauth.exchange_code(
        approve(api, challenge), code_verifier=verifier, redirect_uri=REDIRECT
    )
    second = oauth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.access_token in api.issued_tokens
    with pytest.raises(OAuthGrantError):
        oauth.refresh(first.refresh_token)


def test_a_revoked_refresh_token_is_a_grant_error(api, oauth):
    verifier, challenge = new_pkce_pair()
    tokens = oauth.exchange_code(
        approve(api, challenge), code_verifier=verifier, redirect_uri=REDIRECT
    )
    api.revoke_refresh_token(tokens.refresh_token)
    with pytest.raises(OAuthGrantError) as caught:
        oauth.refresh(tokens.refresh_token)
    assert tokens.refresh_token not in str(caught.value)


def test_an_outage_is_a_retryable_transport_error(api, oauth):
    api.fail_next(503, path="/token")
    with pytest.raises(MetrikaTransportError) as caught:
        oauth.refresh("1:x")
    assert caught.value.retryable


def test_settings_are_checked_before_any_request():
    with pytest.raises(MetrikaConfigError):
        YandexOAuthClient("", "secret")
    with pytest.raises(MetrikaConfigError):
        YandexOAuthClient("id", " ")
    with pytest.raises(MetrikaConfigError):
        YandexOAuthClient("id", "secret", base_url="ftp://oauth")
