"""Metrics summed over worker processes: prometheus_client's multiprocess mode.

Each worker writes its metric values to files in one directory
(``PROMETHEUS_MULTIPROC_DIR``); a scrape, whichever worker answers it,
reads every file there (``MultiProcessCollector``) and shows the sum.
Whoever owns the processes sets this up: :func:`shared_between_workers`
for the paste runner's ``workers = N`` (called by the parent before it
forks, it makes a temporary directory and removes it on the way out), and
for gunicorn the user, who sets the variable before starting it and adds
:func:`tgext.socketio.gunicorn.child_exit` as its ``child_exit`` hook.
:func:`child_exited` is what both parents call when a worker exits.

Nothing here imports ``tg`` at module level: gunicorn's master calls
:func:`child_exited`, and must stay free of it.
"""

import contextlib
import logging
import os
import shutil
import tempfile

log = logging.getLogger("tgext.socketio.metrics")

#: prometheus_client's environment variable: the directory of shared values
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: the directory this process made for its workers (``None``: none made)
_made_directory = None


def multiprocess_directory():
    """The directory of shared metric values in use, or ``None``."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    return directory if directory and os.path.isdir(directory) else None


@contextlib.contextmanager
def shared_between_workers(runtime, processes):
    """Make the metrics of the ``processes`` workers about to be forked one sum.

    Called by the parent before it forks, around its serving: with
    ``socketio.metrics`` on and more than one process, it sets
    ``PROMETHEUS_MULTIPROC_DIR`` (to a new temporary directory, unless the
    user set one), has prometheus_client create values there from now on,
    and drops the instruments the app made before (each worker makes its
    own after the fork). On the way out it puts everything back and removes
    the directory it made.
    """
    global _made_directory
    metrics = getattr(runtime, "metrics", None)
    if metrics is None or processes <= 1:
        yield
        return
    from .._upstream.prometheus_client import use_multiprocess_values

    previous = os.environ.get(MULTIPROC_DIR_VARIABLE)
    made = None
    if multiprocess_directory() is None:
        made = tempfile.mkdtemp(prefix="tgext-socketio-metrics-")
        os.environ[MULTIPROC_DIR_VARIABLE] = made
        _made_directory = made
    restore = use_multiprocess_values()
    metrics.reset()
    log.info(
        "metrics: %d worker processes share %s",
        processes,
        os.environ[MULTIPROC_DIR_VARIABLE],
    )
    try:
        yield
    finally:
        restore()
        if made is not None:
            _made_directory = None
            if previous is None:
                os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
            else:
                os.environ[MULTIPROC_DIR_VARIABLE] = previous
            shutil.rmtree(made, ignore_errors=True)


def child_exited(pid):
    """Worker ``pid`` has exited: its live gauges no longer count.

    Its counters and histograms still do (what it counted happened); its
    ``livesum`` and ``livemin`` gauges (sessions open, backends up) are
    dropped. Nothing is done without a shared directory.
    """
    directory = _made_directory or multiprocess_directory()
    if directory is None:
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:  # metrics never on: nothing was written
        return
    try:
        multiprocess.mark_process_dead(pid, directory)
    except OSError as error:  # a file removed meanwhile
        log.debug("metrics of worker %d not cleared: %s", pid, error)


def check_gunicorn_workers(runtime, workers):
    """Refuse ``socketio.metrics`` under ``gunicorn -w N`` without a shared
    directory: each scrape would show one worker's counts.

    :raises ConfigurationError: naming the variable to set.
    """
    if getattr(runtime, "metrics", None) is None or workers <= 1:
        return
    if multiprocess_directory() is not None:
        return
    from ..exceptions import ConfigurationError

    raise ConfigurationError(
        "socketio.metrics is on and gunicorn -w %d runs %d processes, whose "
        "counts a scrape sums only through prometheus_client's multiprocess "
        "mode: set the environment variable %s to an empty directory before "
        "starting gunicorn, and child_exit = tgext.socketio.gunicorn.child_exit "
        "in its config (see Metrics in the documentation), or serve with one "
        "process." % (workers, workers, MULTIPROC_DIR_VARIABLE)
    )
