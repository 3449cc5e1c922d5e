"""Which allocator new Python objects come from: CPython's or the C library's.

CPython keeps objects of up to 512 bytes in 1 MiB arenas of its own
("pymalloc"), and an arena goes back to the system only once its last object
is gone. A wave of 3,000 clients spreads its objects over some 90 arenas;
while they leave, a few long-lived objects (a counter, a timestamp, a cache
entry) are made in those arenas and keep about ten of them, for good: the
process stayed 17% above its start. The C library's ``malloc`` gives memory
back a 4 KiB page at a time (``malloc_trim``), so the same few objects keep a
few pages instead.

:class:`AllocatorSwitch` changes where *new* objects go, through CPython's
public ``PyMem_GetAllocator``/``PyMem_SetAllocator``: allocating asks the C
library's ``malloc`` (what ``PYTHONMALLOC=malloc`` does from the start),
while freeing and resizing stay pymalloc's own functions, which already hand
every block they do not own to the C library (how pymalloc serves objects
over 512 bytes). Either allocator may therefore be switched to at any
moment: a block is always freed by a function that knows where it came from.

It switches only where that reasoning holds: CPython running pymalloc with
nothing installed over it (no ``PYTHONMALLOC``, no ``-X dev`` debug hooks,
no tracemalloc), checked before every switch; anywhere else it does nothing.
What it costs: pymalloc is faster, so an event costs more while the C
library allocates (6% at 50 clients, 16% at 500: ``bench/allocator.py``).
One side effect: ``sys.getallocatedblocks()`` counts wrong once blocks from
``malloc`` were freed.
"""

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_RAW, _MEM, _OBJ = 0, 1, 2  # PyMemAllocatorDomain


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
    if api is None or sys.implementation.name != "cpython":
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
        self._pymalloc = self._malloc = None
        self.using_malloc = False
        if self._api is not None and self._api[2]() == b"pymalloc":
            get = self._read
            raw, pymalloc = get(_RAW), get(_OBJ)
            if pymalloc.same_as(get(_MEM)) and not raw.ctx and not pymalloc.ctx:
                self._pymalloc = pymalloc
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
        for domain in (_MEM, _OBJ):
            if not self._read(domain).same_as(expected):
                # something was installed over it since (tracemalloc, say):
                # replacing that would break it; stay as things are
                log.debug("the allocator changed under us: no longer switching it")
                self._pymalloc = None
                return False
        for domain in (_MEM, _OBJ):
            self._api[1](domain, ctypes.byref(wanted))
        self.using_malloc = using_malloc
        return True
