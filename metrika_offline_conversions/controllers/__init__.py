from . import portal
from . import oauth
from . import centre_link
