from . import test_cart_capture
from . import test_checkout_tour
from . import test_translations
