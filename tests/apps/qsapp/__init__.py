"""An app in the layout ``gearbox quickstart`` makes: the config names the
package and no root controller, so TurboGears imports
``qsapp.controllers.root.RootController`` itself (at the first request, unless
tgext.socketio asks for it at start-up). Served from ``tests/apps`` on
``PYTHONPATH`` with ``use = call:qsapp.config.middleware:make_app``."""
