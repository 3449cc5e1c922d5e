"""Users of the test apps with a login, for TG's simple authentication.

Importable by an app that ``gearbox serve`` loads (nothing of pytest).
"""
from tg.configuration.auth import TGAuthMetadata

USERS = {
    # user name: (password, groups, permissions)
    "alice": ("alice-pw", ["admins"], ["edit", "read"]),
    "bob": ("bob-pw", [], ["read"]),
}


class DictAuthMetadata(TGAuthMetadata):
    """Users, groups and permissions from ``users`` (``USERS`` by default):
    ``{name: (password, groups, permissions)}``; any other name is unknown."""

    def __init__(self, users=None):
        self.users = USERS if users is None else users

    def authenticate(self, environ, identity):
        user = self.users.get(identity.get("login"))
        if user is not None and identity.get("password") == user[0]:
            return identity["login"]
        return None

    def get_user(self, identity, userid):
        return {"user_name": userid} if userid else None

    def get_groups(self, identity, userid):
        return list(self.users.get(userid, (None, [], []))[1]) or (
            ["users"] if userid else []
        )

    def get_permissions(self, identity, userid):
        return list(self.users.get(userid, (None, [], []))[2])
