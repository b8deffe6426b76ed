from . import portal
from . import centre_link
