"""twistd plugin: `twistd -n chatire` runs the chatire daemon."""

from twisted.application.service import ServiceMaker

chatire = ServiceMaker(
    "chatire", "chatire.tap", "Realtime chat server (HTTP API + WebSocket)", "chatire"
)
