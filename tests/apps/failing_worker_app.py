"""``runner_app``, except that under ``workers = N`` every worker process
exits (status 3) as soon as it is forked, before it is ready to serve.

The exit comes from an at-fork hook in processes that are not children of
the process that made the app: the workers are forked by the zygote, itself
a child of the server's process (``tgext.socketio._serving.arbiter``), and
the zygote must live to report them.
"""

import os

from .runner_app import make_app as make_runner_app


def make_app(global_config=None, **app_conf):
    maker = os.getpid()

    def exit_in_a_worker():
        if os.getppid() != maker:
            os._exit(3)

    os.register_at_fork(after_in_child=exit_in_a_worker)
    return make_runner_app(global_config, **app_conf)
