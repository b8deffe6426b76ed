from . import test_install
from . import test_settings
from . import test_record_identifiers
from . import test_conversion_events
from . import test_upload
from . import test_upload_concurrency
from . import test_upload_path
from . import test_translations
