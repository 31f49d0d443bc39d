"""chatire as a .tac file: `twistd -ny chatire.tac`, configured by CHATIRE_* variables."""

import os
import sys

from twisted.application.service import Application
from twisted.internet import reactor
from twisted.logger import ILogObserver

from chatire.config import from_environment
from chatire.logs import json_observer
from chatire.preflight import preflight
from chatire.service import ChatireService
from chatire.tap import check

config = from_environment(os.environ)
check(config)
preflight(config)
application = Application("chatire")
if config.log_format == "json":
    application.setComponent(ILogObserver, json_observer(sys.stdout))
ChatireService(config, reactor).setServiceParent(application)
