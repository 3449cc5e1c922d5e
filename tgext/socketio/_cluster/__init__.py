"""Cluster operations: acting on the clients of every process serving the
app (disconnect them, list them, ask them all for an answer), from a
handler, a controller or a process that serves no client."""
