from . import test_website_capture
from . import test_translations
