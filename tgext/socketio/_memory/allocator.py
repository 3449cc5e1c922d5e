"""Which allocator new Python objects come from: CPython's or the C library's.

CPython keeps objects of up to 512 bytes in 1 MiB arenas of its own
("pymalloc"), and an arena goes back to the system only once its last object
is gone. A wave of 3,000 clients spreads its objects over some 90 arenas;
while they leave, a few long-lived objects (a counter, a timestamp, a cache
entry) are made in those arenas and keep about ten of them, for good: the
process stayed 17% above its start. The C library's ``malloc`` gives memory
back a 4 KiB page at a time (``malloc_trim``), so the same few objects keep a
few pages instead.

:class:`AllocatorSwitch` changes where most *new* objects go, through
``PyMem_GetAllocator``/``PyMem_SetAllocator``: allocating asks the C
library's ``malloc`` (as under ``PYTHONMALLOC=malloc``), while freeing and
resizing stay pymalloc's own functions, which hand every block that is not
in one of their arenas to the C library (how pymalloc serves objects over
512 bytes). Either allocator may therefore be switched to at any moment: a
block is always freed by a function that knows where it came from. (A
resize of one of pymalloc's blocks, or from nothing, still takes a block
from pymalloc.) CPython's documentation supports only allocators that wrap
the existing one once Python runs; this one leaves freeing to it but relies
on how pymalloc treats blocks it does not own, which is why it is limited to
the versions it was checked on (3.10 to 3.13).

It switches only where that reasoning holds: one of those versions running
pymalloc with nothing installed over it (no ``PYTHONMALLOC``, no ``-X dev``
debug hooks, not a free-threaded build), checked again before every switch:
while something else is installed over it (tracemalloc, say), it leaves
things as they are and tries again at the next switch. What it costs:
pymalloc is faster, so an event costs more while the C library allocates
(6% at 50 clients, 16% at 500: ``bench/allocator.py``). One side effect:
``sys.getallocatedblocks()`` counts wrong once blocks from ``malloc`` were
freed.
"""

import ctypes
import logging
import sys

log = logging.getLogger("tgext.socketio.allocator")

_RAW, _MEM, _OBJ = 0, 1, 2  # PyMemAllocatorDomain
#: the CPython versions whose pymalloc this was checked against
_CHECKED_VERSIONS = ((3, 10), (3, 13))


class _Allocator(ctypes.Structure):
    """``PyMemAllocatorEx``: a context and four function pointers."""

    _fields_ = [
        ("ctx", ctypes.c_void_p),
        ("malloc", ctypes.c_void_p),
        ("calloc", ctypes.c_void_p),
        ("realloc", ctypes.c_void_p),
        ("free", ctypes.c_void_p),
    ]

    def same_as(self, other):
        return all(
            getattr(self, name) == getattr(other, name) for name, _ in self._fields_
        )


def _c_api():
    """CPython's allocator functions, or None where they cannot be reached."""
    api = getattr(ctypes, "pythonapi", None)
    oldest, newest = _CHECKED_VERSIONS
    if (
        api is None
        or sys.implementation.name != "cpython"
        or not oldest <= sys.version_info[:2] <= newest
    ):
        return None
    try:
        get, set_, name = (
            api.PyMem_GetAllocator,
            api.PyMem_SetAllocator,
            api._PyMem_GetCurrentAllocatorName,
        )
    except AttributeError:
        return None
    get.argtypes = set_.argtypes = [ctypes.c_int, ctypes.POINTER(_Allocator)]
    get.restype = set_.restype = None
    name.argtypes, name.restype = [], ctypes.c_char_p
    return get, set_, name


class AllocatorSwitch:
    """Sends new objects to pymalloc (as CPython does) or to ``malloc``."""

    def __init__(self):
        self._api = _c_api()
        self._raw = self._pymalloc = self._malloc = None
        self._covered = False  # something is installed over ours
        self.using_malloc = False
        if self._api is not None and self._api[2]() == b"pymalloc":
            get = self._read
            raw, pymalloc = get(_RAW), get(_OBJ)
            if pymalloc.same_as(get(_MEM)) and not raw.ctx and not pymalloc.ctx:
                self._raw, self._pymalloc = raw, pymalloc
                self._malloc = _Allocator(
                    None, raw.malloc, raw.calloc, pymalloc.realloc, pymalloc.free
                )

    @property
    def available(self):
        """Whether this interpreter's allocators can be switched."""
        return self._pymalloc is not None

    def use_malloc(self):
        """New objects from the C library's ``malloc``; False if not available."""
        return self._switch(self._pymalloc, self._malloc, True)

    def use_pymalloc(self):
        """New objects from pymalloc again (CPython's own choice)."""
        return self._switch(self._malloc, self._pymalloc, False)

    def _read(self, domain):
        allocator = _Allocator()
        self._api[0](domain, ctypes.byref(allocator))
        return allocator

    def _switch(self, expected, wanted, using_malloc):
        if self._pymalloc is None:
            return False
        if self.using_malloc == using_malloc:
            return True
        if not (
            self._read(_RAW).same_as(self._raw)
            and self._read(_MEM).same_as(expected)
            and self._read(_OBJ).same_as(expected)
        ):
            # something is installed over it (tracemalloc, say): replacing
            # that would break it; things stay as they are until it is gone
            if not self._covered:
                log.warning(
                    "an allocator is installed over CPython's: new objects "
                    "stay where they come from (%s) while it is",
                    "malloc" if self.using_malloc else "pymalloc",
                )
                self._covered = True
            return False
        self._covered = False
        for domain in (_MEM, _OBJ):
            self._api[1](domain, ctypes.byref(wanted))
        self.using_malloc = using_malloc
        return True
