"""prometheus_client's undocumented names, in one place.

Checked against prometheus_client 0.20.0 to 0.26.0. prometheus_client
picks the class of every metric value when ``prometheus_client.values`` is
first imported: values kept in shared files when the environment variable
``PROMETHEUS_MULTIPROC_DIR`` is set then, in the process's memory
otherwise. A server that forks its workers from a process where the app
(and prometheus_client) was loaded already sets the variable later, so it
picks the class again (:func:`use_multiprocess_values`); metric values
read ``values.ValueClass`` each time one is created.
"""

from gevent import monkey
from prometheus_client import Counter, Histogram, values

from . import INSTANCE_ATTRIBUTE, relies_on

LIBRARY = "prometheus-client"
CHECKED = "0.20.0-0.26.0"

relies_on(LIBRARY, CHECKED, values, "ValueClass")
relies_on(LIBRARY, CHECKED, values, "get_value_class", [])
relies_on(LIBRARY, CHECKED, values, "MutexValue")
relies_on(LIBRARY, CHECKED, values.MutexValue, "_lock", INSTANCE_ATTRIBUTE)
relies_on(LIBRARY, CHECKED, values.MutexValue, "inc", ["self", "amount"])
# where a label child keeps its values (_value; _sum and _buckets)
relies_on(LIBRARY, CHECKED, Counter, "_metric_init", ["self"])
relies_on(LIBRARY, CHECKED, Histogram, "_metric_init", ["self"])

#: the thread module's own lock, whether gevent patched ``threading`` or not
_native_lock = monkey.get_original("_thread", "allocate_lock")


def use_multiprocess_values():
    """Create metric values in ``PROMETHEUS_MULTIPROC_DIR`` from now on (the
    variable must be set); returns what puts the previous class back."""
    previous = values.ValueClass
    values.ValueClass = values.get_value_class()

    def restore():
        values.ValueClass = previous

    return restore


def uses_multiprocess_values():
    """Whether metric values created now go to ``PROMETHEUS_MULTIPROC_DIR``."""
    return values.ValueClass is not values.MutexValue


def use_native_locks(child):
    """Guard the in-memory values of a label ``child`` with native locks.

    prometheus_client guards each value with ``threading.Lock``, which is
    gevent's once patched: 0.3-0.4 us more per increment on the hot path.
    Greenlets of one thread never switch inside an increment (it has no
    blocking call), so an uncontended native lock is as safe; a real thread
    (gevent's pool) waits on it as on any lock. Values kept in files
    (several processes) share one module lock and are left as they are.
    """
    held = [getattr(child, "_value", None), getattr(child, "_sum", None)]
    held.extend(getattr(child, "_buckets", ()))
    for value in held:
        if type(value) is values.MutexValue:
            value._lock = _native_lock()
    return child


def incrementer(child):
    """A function adding its argument to a counter or gauge label ``child``.

    ``Counter.inc`` checks that the metric is a label child, the amount's
    sign and an exemplar before it adds to its value: the package's own
    children pass all three by construction, so the value's own ``inc`` is
    called directly (``child.inc`` when a release keeps it elsewhere).
    """
    value = getattr(child, "_value", None)
    increment = getattr(value, "inc", None)
    return increment if increment is not None else child.inc


def histogram_adder(child, bounds):
    """A function ``add(seconds, counts)`` adding observations to a histogram
    label ``child`` all at once: ``seconds`` to its sum, ``counts[i]`` to
    its bucket ``i`` (``bounds`` are its bounds, ``+Inf`` last), as that
    many ``observe`` calls would have. A release keeping its values
    elsewhere gets them one ``observe`` at a time, at each bucket's bound
    (its sum then approximate)."""
    total = getattr(child, "_sum", None)
    buckets = getattr(child, "_buckets", None)
    if total is None or not buckets or len(buckets) != len(bounds):
        largest = max(bound for bound in bounds if bound != float("inf"))

        def add_one_by_one(seconds, counts):
            for bound, count in zip(bounds, counts):
                for _ in range(count):
                    child.observe(min(bound, largest))

        return add_one_by_one
    add_to_sum = total.inc
    bucket_increments = [bucket.inc for bucket in buckets]

    def add(seconds, counts):
        add_to_sum(seconds)
        for increment, count in zip(bucket_increments, counts):
            if count:
                increment(count)

    return add
