"""The root controller TurboGears finds by itself: ``RootController`` here."""

from qsapp.controllers.socketio import QuickstartSocketIO
from qsapp.lib.base import BaseController
from tg import expose


class RootController(BaseController):
    socketio = QuickstartSocketIO()

    @expose("qsapp.templates.index")
    def index(self):
        return {}
