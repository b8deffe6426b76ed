from . import test_install
from . import test_settings
from . import test_record_identifiers
