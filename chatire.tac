"""chatire as a .tac file: `twistd -ny chatire.tac`, configured by CHATIRE_* variables."""

import os
import sys

from twisted.application.service import Application
from twisted.internet import reactor

from chatire.config import from_environment
from chatire.logs import RootService, destination_from_argv
from chatire.preflight import preflight
from chatire.service import ChatireService
from chatire.tap import check

config = from_environment(os.environ)
check(config)
preflight(config)
application = Application("chatire")
# As `twistd chatire`: JSON lines to twistd's --logfile or standard output, SIGHUP
# reopens the log file, SIGUSR1 rotates it.
try:
    top = RootService(config.log_format, destination=destination_from_argv(sys.argv[1:]),
                      reactor=reactor)
except ValueError as e:
    raise SystemExit(f"chatire: {e}") from None
top.setServiceParent(application)
ChatireService(config, reactor).setServiceParent(top)
