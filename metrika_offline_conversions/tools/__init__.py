from . import metrika_capture
