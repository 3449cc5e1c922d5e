"""@require on namespace methods, checked against the identity TG's auth stack
saw on the connection: a real login through the app's login form, its
auth_tkt cookie on the Socket.IO connection; and REMOTE_USER."""
import pytest
import requests
from gevent.queue import Queue
from tg import predicates, require

from tgext.socketio import SocketIOTGNamespace

from .apps.auth_app import build_auth_app, build_remote_user_app, login
from .conftest import controller_for

DENIED = "method_access_denied"


class Guarded(SocketIOTGNamespace):
    @require(predicates.not_anonymous())
    def on_whoami(self):
        return self.request.identity["repoze.who.userid"]

    @require(predicates.in_group("admins"))
    def on_admin(self):
        return "admin area"

    @require(predicates.has_permission("read"))
    @require(predicates.has_permission("edit"))
    def on_edit(self):
        return "edited"

    @require(None)  # never allowed, as in 0.0.x
    def on_nopred(self):
        return "unreachable"

    def on_public(self):
        return "public"


class MembersOnly(SocketIOTGNamespace):
    @require(predicates.not_anonymous())
    def recv_connect(self):
        self.emit("welcome", self.request.identity["repoze.who.userid"])


@pytest.fixture
def auth_server(live_server):
    controller = controller_for({"guarded": Guarded, "members": MembersOnly})
    return live_server(build_auth_app(controller))


def errors_of(client, namespace):
    queue = Queue()
    client.on("error", lambda *args: queue.put(args), namespace=namespace)
    return queue


def denial(method_name):
    return (DENIED, 'You do not have access to method "%s"' % method_name)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_anonymous_is_denied_not_anonymous(auth_server, transport):
    client = auth_server.connect(namespaces=["/guarded"], transport=transport)
    errors = errors_of(client, "/guarded")
    assert client.call("whoami", namespace="/guarded", timeout=5) is None
    assert errors.get(timeout=5) == denial("on_whoami")
    assert client.call("public", namespace="/guarded", timeout=5) == "public"


@pytest.mark.parametrize("transport", ["websocket", "polling", "upgrade"])
def test_logged_in_user_passes_not_anonymous(auth_server, transport):
    cookie = login(auth_server.url, "bob")
    client = auth_server.connect(namespaces=["/guarded"], transport=transport,
                                 headers={"Cookie": cookie})
    assert client.call("whoami", namespace="/guarded", timeout=5) == "bob"


def test_login_form_rejects_a_wrong_password(auth_server):
    response = requests.post(
        auth_server.url + "/login_handler",
        data={"login": "bob", "password": "wrong"}, allow_redirects=False, timeout=5,
    )
    assert "authtkt" not in response.cookies


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_group_predicate_allows_members_and_denies_others(auth_server, transport):
    alice = auth_server.connect(namespaces=["/guarded"], transport=transport,
                                headers={"Cookie": login(auth_server.url, "alice")})
    bob = auth_server.connect(namespaces=["/guarded"], transport=transport,
                              headers={"Cookie": login(auth_server.url, "bob")})
    bob_errors = errors_of(bob, "/guarded")
    assert alice.call("admin", namespace="/guarded", timeout=5) == "admin area"
    assert bob.call("admin", namespace="/guarded", timeout=5) is None
    assert bob_errors.get(timeout=5) == denial("on_admin")


def test_every_require_must_hold(auth_server):
    alice = auth_server.connect(namespaces=["/guarded"],
                                headers={"Cookie": login(auth_server.url, "alice")})
    bob = auth_server.connect(namespaces=["/guarded"],
                              headers={"Cookie": login(auth_server.url, "bob")})
    bob_errors = errors_of(bob, "/guarded")
    assert alice.call("edit", namespace="/guarded", timeout=5) == "edited"
    assert bob.call("edit", namespace="/guarded", timeout=5) is None  # read, not edit
    assert bob_errors.get(timeout=5) == denial("on_edit")


def test_require_none_is_always_denied(auth_server):
    alice = auth_server.connect(namespaces=["/guarded"],
                                headers={"Cookie": login(auth_server.url, "alice")})
    errors = errors_of(alice, "/guarded")
    assert alice.call("nopred", namespace="/guarded", timeout=5) is None
    assert errors.get(timeout=5) == denial("on_nopred")


def test_denied_recv_connect_refuses_the_namespace(auth_server, wait_for):
    import socketio

    client = socketio.Client()
    auth_server._clients.append(client)
    errors = errors_of(client, "/members")
    gone = Queue()
    client.on("disconnect", lambda *reason: gone.put(reason), namespace="/members")
    client.connect(auth_server.url, namespaces=["/members"], socketio_path="socketio",
                   transports=["websocket"])
    assert errors.get(timeout=5) == denial("recv_connect")
    assert gone.get(timeout=5) == ("server disconnect",)
    wait_for(lambda: "/members" not in client.namespaces)


def test_allowed_recv_connect_runs(auth_server):
    import socketio

    client = socketio.Client()
    auth_server._clients.append(client)
    welcome = Queue()
    client.on("welcome", lambda user: welcome.put(user), namespace="/members")
    client.connect(auth_server.url, namespaces=["/members"], socketio_path="socketio",
                   transports=["polling"],
                   headers={"Cookie": login(auth_server.url, "alice")})
    assert welcome.get(timeout=5) == "alice"


def test_remote_user_identity_is_checked(live_server):
    server = live_server(build_remote_user_app(controller_for({"guarded": Guarded})))
    carol = server.connect(namespaces=["/guarded"], headers={"X-Test-User": "carol"})
    nobody = server.connect(namespaces=["/guarded"])
    errors = errors_of(nobody, "/guarded")
    assert carol.call("whoami", namespace="/guarded", timeout=5) == "carol"
    assert nobody.call("whoami", namespace="/guarded", timeout=5) is None
    assert errors.get(timeout=5) == denial("on_whoami")
