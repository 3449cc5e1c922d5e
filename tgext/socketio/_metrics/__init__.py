"""Prometheus metrics of the Socket.IO server (``socketio.metrics = true``).

:mod:`.instruments` holds the metric set and what the hot path calls;
:mod:`.processes` makes the metrics of several worker processes one sum.
The controller that serves them is :class:`tgext.socketio.MetricsController`.
"""
