"""SocketIOTGNamespace: a BaseNamespace whose handlers honour TG's decorators."""
from .namespace import BaseNamespace


class SocketIOTGNamespace(BaseNamespace):
    """A namespace whose ``on_<event>`` methods may use ``@require``/``@validate``."""
