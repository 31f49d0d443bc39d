"""chatire as a .tac file: `twistd -ny chatire.tac`, configured by CHATIRE_* variables."""

import os

from twisted.application.service import Application
from twisted.internet import reactor

from chatire.config import from_environment
from chatire.preflight import preflight
from chatire.service import ChatireService
from chatire.tap import check

config = from_environment(os.environ)
check(config)
preflight(config)
application = Application("chatire")
ChatireService(config, reactor).setServiceParent(application)
