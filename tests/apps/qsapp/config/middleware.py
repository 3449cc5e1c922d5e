"""WSGI application of qsapp (``make_app``, as quickstart writes it)."""

from qsapp.config.app_cfg import base_config

__all__ = ["make_app"]


def make_app(global_conf, **app_conf):
    return base_config.make_wsgi_app(global_conf, app_conf, wrap_app=None)
