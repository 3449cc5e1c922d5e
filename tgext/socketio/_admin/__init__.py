"""The admin view's page (:class:`tgext.socketio.SocketIOAdminController`)."""
