"""The base controller of the app's controllers (quickstart's lib/base.py)."""

from tg import TGController


class BaseController(TGController):
    """Every controller of the app derives from this one."""
