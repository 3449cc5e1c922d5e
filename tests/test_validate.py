"""@validate on namespace methods, in every form TurboGears 2.5 accepts, with
the exact error payloads clients receive; error_handler and
exception_handler_decorator; and tgext.socketio 0.0.x's own validation cases
(its schema signature, its FormEncode expectations) over real connections."""
import pytest
from formencode import Invalid, Schema
from formencode import validators as fe
from gevent.queue import Empty, Queue
from tg import validate
from tg.validation import Convert, TGValidationError

from tgext.socketio import SocketIOTGNamespace

INVALID = "invalid_method_args"


class NoFireBallValidator:
    """0.0.x's test validator: "auto" becomes "ping", anything odd fails."""

    def to_python(self, value, *args, **kw):
        attack_type = value["type"]
        if attack_type in ("auto", "ping"):
            return {"type": "ping"}
        if attack_type == "formencode":
            raise Invalid("Invalid Type", value, None)
        if attack_type == "exception_handler":
            return "exception_handler"
        raise TGValidationError("Invalid Type")


class LegacySchema:
    """A 0.0.x schema: ``validate(self, params, state)``."""

    def validate(self, params, state):
        return {"attack": NoFireBallValidator().to_python(params["attack"])}


class ModernSchema:
    """A TG 2.5 schema: ``validate(self, params)``; errors per field."""

    def validate(self, params):
        if params.get("name") != "ok":
            raise TGValidationError(
                "bad name", value=params, error_dict={"name": "must be ok"}
            )
        return {"name": params["name"].upper()}


class AgeSchema(Schema):
    """A FormEncode Schema: one validator for all the arguments."""

    allow_extra_fields = True
    age = fe.Int(not_empty=True)


class PingPong(SocketIOTGNamespace):
    def exception_handler_decorator(self, method):
        def wrap(*args, **kwargs):
            if kwargs.get("attack") == "exception_handler":
                self.emit("handled")
                return "handled"
            return method(*args, **kwargs)

        return wrap

    @validate({"attack": NoFireBallValidator()})
    def on_ping(self, attack):
        self.emit("pong", {"sound": "pong"})

    @validate(LegacySchema())
    def on_custom_schema_ping(self, attack):
        self.emit("pong", {"sound": "pong"})

    def ping_error(self, attack):
        self.emit("ping_error", {"attack": attack})
        return "handled by ping_error"

    @validate({"attack": NoFireBallValidator()}, error_handler=ping_error)
    def on_handled_ping(self, attack):
        self.emit("pong", {"sound": "pong"})
        return "pong sent"


class Forms(SocketIOTGNamespace):
    @validate({"count": Convert(int, "Must be a number"),
               "label": Convert(str.strip, "Required", default="none")})
    def on_convert(self, count, label=None):
        return count * 2, label

    @validate({"age": fe.Int(min=0), "email": fe.Email(not_empty=True)})
    def on_formencode_fields(self, age, email):
        return {"age": age, "email": email}

    @validate(ModernSchema())
    def on_schema(self, name):
        return name

    @validate()
    def on_move(self, x: int, y: int, fast: bool = False):
        return {"x": x, "y": y, "fast": fast}

    @validate(Convert(int, "not per field"))
    def on_whole_convert(self, value):
        return value

    @validate(AgeSchema())
    def on_formencode_schema(self, age, name="anonymous"):
        return {"age": age, "name": name}


def formencode_config(explode=True):
    config = {"validation.exceptions": [Invalid]}
    if explode:
        config["validation.explode"] = {
            Invalid: lambda error: {"errors": error.unpack_errors(), "values": error.value}
        }
    return config


@pytest.fixture(params=["explode", "exceptions-only"])
def server(request, serve):
    config = formencode_config(explode=request.param == "explode")
    return serve({"test": PingPong, "forms": Forms}, config=config)


def queue_of(client, event, namespace):
    queue = Queue()
    client.on(event, lambda *args: queue.put(args), namespace=namespace)
    return queue


def assert_no_more(queue, wait=0.2):
    with pytest.raises(Empty):
        queue.get(timeout=wait)


@pytest.fixture
def pingpong(server):
    client = server.connect(namespaces=["/test"])
    return client, queue_of(client, "pong", "/test"), queue_of(client, "error", "/test")


@pytest.mark.parametrize("attack_type", ["ping", "auto"])
def test_valid_attack_gets_pong(pingpong, attack_type):
    client, pongs, errors = pingpong
    client.emit("ping", {"type": attack_type}, namespace="/test")
    assert pongs.get(timeout=5) == ({"sound": "pong"},)
    assert_no_more(errors)


def test_failed_validation_sends_errors_per_field(pingpong):
    client, pongs, errors = pingpong
    client.emit("ping", {"type": "invalid"}, namespace="/test")
    assert errors.get(timeout=5) == (INVALID, {"attack": "Invalid Type"})
    assert_no_more(pongs)


def test_formencode_invalid_in_a_field_is_a_validation_error(pingpong):
    client, pongs, errors = pingpong
    client.emit("ping", {"type": "formencode"}, namespace="/test")
    assert errors.get(timeout=5) == (INVALID, {"attack": "Invalid Type"})
    assert_no_more(pongs)


def test_legacy_schema_with_state_argument_still_works(pingpong):
    client, pongs, errors = pingpong
    client.emit("custom_schema_ping", {"type": "ping"}, namespace="/test")
    assert pongs.get(timeout=5) == ({"sound": "pong"},)
    client.emit("custom_schema_ping", {"type": "formencode"}, namespace="/test")
    assert errors.get(timeout=5) == (INVALID, "Invalid Type")
    assert_no_more(pongs)


def test_exception_handler_decorator_wraps_the_call(pingpong):
    client, pongs, errors = pingpong
    handled = queue_of(client, "handled", "/test")
    ack = client.call("ping", {"type": "exception_handler"}, namespace="/test", timeout=5)
    assert ack == "handled"
    assert handled.get(timeout=5) == ()
    assert_no_more(pongs)


@pytest.mark.parametrize("attack_type", ["ping", "auto"])
def test_error_handler_is_not_called_when_valid(pingpong, attack_type):
    client, pongs, errors = pingpong
    ack = client.call("handled_ping", {"type": attack_type}, namespace="/test", timeout=5)
    assert ack == "pong sent"
    assert pongs.get(timeout=5) == ({"sound": "pong"},)


def test_error_handler_runs_instead_with_unvalidated_args(pingpong):
    client, pongs, errors = pingpong
    handled = queue_of(client, "ping_error", "/test")
    ack = client.call("handled_ping", {"type": "invalid"}, namespace="/test", timeout=5)
    assert ack == "handled by ping_error"
    assert handled.get(timeout=5) == ({"attack": {"type": "invalid"}},)
    assert_no_more(errors)
    assert_no_more(pongs)


@pytest.fixture
def forms(server):
    client = server.connect(namespaces=["/forms"])
    return client, queue_of(client, "error", "/forms")


def call(client, event, *args):
    return client.call(event, args, namespace="/forms", timeout=5)


def test_convert_validators_convert_and_default(forms):
    client, errors = forms
    assert call(client, "convert", "21", "  hi ") == (42, "hi")
    assert call(client, "convert", "4") == (8, "none")
    assert_no_more(errors, 0.05)


def test_convert_failure_uses_its_message(forms):
    client, errors = forms
    assert call(client, "convert", "many") is None
    assert errors.get(timeout=5) == (INVALID, {"count": "Must be a number"})


def test_formencode_field_validators_report_every_field(forms):
    client, errors = forms
    assert call(client, "formencode_fields", "7", "a@b.example") == {
        "age": 7, "email": "a@b.example"}
    assert call(client, "formencode_fields", "-1", "nope") is None
    name, messages = errors.get(timeout=5)
    assert name == INVALID
    assert messages == {
        "age": "Please enter a number that is 0 or greater",
        "email": "An email address must contain a single @",
    }


def test_schema_object_validate(forms):
    client, errors = forms
    assert call(client, "schema", "ok") == "OK"
    assert call(client, "schema", "no") is None
    assert errors.get(timeout=5) == (INVALID, {"name": "must be ok"})


def test_type_hints_build_converters(forms):
    client, errors = forms
    assert call(client, "move", "3", "4") == {"x": 3, "y": 4, "fast": False}
    assert call(client, "move", 1, "2", "true") == {"x": 1, "y": 2, "fast": True}
    assert call(client, "move", "three", "4") is None
    assert errors.get(timeout=5) == (INVALID, {"x": "Invalid"})


def test_validator_error_that_is_not_per_field_is_one_message(forms):
    client, errors = forms
    assert call(client, "whole_convert", "x") is None
    assert errors.get(timeout=5) == (INVALID, "not per field")


def test_formencode_schema_validates_all_arguments(forms):
    client, errors = forms
    assert call(client, "formencode_schema", "30", "zoe") == {"age": 30, "name": "zoe"}
    assert call(client, "formencode_schema", "old") is None
    assert errors.get(timeout=5) == (INVALID, {"age": "Please enter an integer value"})


def test_wrong_number_of_arguments_is_invalid_method_args(forms):
    client, errors = forms
    assert call(client, "move", "1", "2", "true", "extra") is None
    assert errors.get(timeout=5) == (
        INVALID, 'The method "on_move" takes 2 to 3 arguments, 4 given')


def test_formencode_invalid_not_registered_is_a_handler_crash(serve):
    # TG 2.5 counts only TGValidationError unless the app registers FormEncode,
    # exactly as for controller actions.
    server = serve({"test": PingPong})
    client = server.connect(namespaces=["/test"])
    errors = queue_of(client, "error", "/test")
    client.emit("ping", {"type": "formencode"}, namespace="/test")
    assert errors.get(timeout=5) == (
        "internal_server_error", 'The server failed while running "on_ping"')
    client.emit("ping", {"type": "invalid"}, namespace="/test")
    assert errors.get(timeout=5) == (INVALID, {"attack": "Invalid Type"})
