from . import test_form_capture
from . import test_contact_form_tour
from . import test_translations
