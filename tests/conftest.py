"""Pytest set-up for the framework-free layer.

``odoo`` is made unimportable before anything else is loaded, so a module of ``metrika_core``
that imports Odoo fails this suite. The core is imported under its own name from the addon
folder, which is how the addon's own ``__init__`` (which needs Odoo) is kept out of the way.
"""

import pathlib
import sys

sys.modules["odoo"] = None

TESTS_DIR = pathlib.Path(__file__).resolve().parent
ADDON_DIR = TESTS_DIR.parent / "metrika_offline_conversions"
for path in (str(ADDON_DIR), str(TESTS_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)


import pytest  # noqa: E402 - after the path set-up above

from metrika_core.client import MetrikaClient  # noqa: E402
from metrika_stand_in import DEFAULT_COUNTER_ID, MetrikaStandIn  # noqa: E402

STAND_IN_TOKEN = "test-token"


@pytest.fixture
def api():
    """A running stand-in (token ``test-token``, counter 12345)."""
    with MetrikaStandIn(token=STAND_IN_TOKEN) as stand_in:
        yield stand_in


@pytest.fixture
def make_client(api):
    """``make(token=…, counter_id=…, client_class=…, **kwargs)`` → a client of the stand-in
    (a :class:`MetrikaClient` unless ``client_class`` says otherwise), closed afterwards."""
    clients = []

    def make(
        token=STAND_IN_TOKEN, counter_id=DEFAULT_COUNTER_ID, client_class=MetrikaClient, **kwargs
    ):
        kwargs.setdefault("base_url", api.url)
        kwargs.setdefault("timeout", (2.0, 5.0))
        client = client_class(token, counter_id, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()
