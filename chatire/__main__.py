"""`python -m chatire`: the admin command (see chatire.admin)."""

from chatire.admin import main

main()
