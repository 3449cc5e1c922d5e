"""The root controller TurboGears finds by itself: ``RootController`` here."""

from qsapp.controllers.socketio import QuickstartSocketIO
from qsapp.lib.base import BaseController
from tg import expose
from tg.predicates import Predicate

from tgext.socketio import MetricsController, SocketIOAdminController


class from_this_machine(Predicate):
    """A TG predicate of the app's own: the request comes from loopback."""

    message = "Only from this machine"

    def evaluate(self, environ, credentials):
        if environ.get("REMOTE_ADDR") not in ("127.0.0.1", "::1"):
            self.unmet()


class RootController(BaseController):
    socketio = QuickstartSocketIO()
    socketio_admin = SocketIOAdminController(from_this_machine(), read_only=True)
    metrics = MetricsController(allow_only=from_this_machine())

    @expose("qsapp.templates.index")
    def index(self):
        return {}
