"""Where ``models/metrika_conversion.py`` imports ``UploadRun`` from.

The upload path lives in ``upload_run.py`` (one call of the cron) and the ``senders`` package
(one sender per upload method); new code imports from there.
"""

from .upload_run import UploadRun

__all__ = ["UploadRun"]
