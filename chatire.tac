"""chatire as a .tac file: `twistd -ny chatire.tac`, configured by CHATIRE_* variables."""

import os
import sys

from twisted.application.service import Application

from chatire.config import from_environment
from chatire.logs import destination_from_argv
from chatire.tap import start_up

# The same daemon as `twistd chatire` (chatire.tap.start_up, chatire.daemon.build):
# JSON lines to twistd's --logfile or standard output, SIGHUP reopens the log file,
# SIGUSR1 rotates it.
try:
    config = from_environment(os.environ)
except ValueError as e:
    raise SystemExit(f"chatire: {e}") from None
application = Application("chatire")
start_up(config, destination_from_argv(sys.argv[1:])).setServiceParent(application)
