from . import portal
from . import oauth
