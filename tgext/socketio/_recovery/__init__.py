"""Connection state recovery: a client whose transport dropped gets its sid,
rooms, session, channel subscriptions and the events it missed back.

socket.io-client 4.6+ does the client half: it remembers the last offset it
received (the last argument of every event sent to a room or a namespace)
and the private id (``pid``) of the server's CONNECT reply, and sends both in
its next CONNECT. :mod:`.log` keeps the events an engine sent, with their
offsets; :mod:`.clients` keeps what a dropped client had, for the window;
:mod:`.recovery` ties both to the engine.
"""
