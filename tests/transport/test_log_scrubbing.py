"""The log filter's record of live credentials: ``forget`` runs from ``weakref.finalize``, that is
from the garbage collector, in whatever thread allocates, possibly while that thread is inside
``register`` or the log filter. It must never wait on the lock (a wait there deadlocked a test
run: the collector fired inside ``held()`` and its finalizer waited for the lock ``held()``
held)."""

from __future__ import annotations

import threading

from hfrag.transport import redaction

SECRET = "hf_planted_secret_for_scrubbing_0123456789"
OTHER = "hf_another_secret_for_scrubbing_9876543210"


class _Owner:
    pass


def _in_thread(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    thread.join(5)
    return thread


def test_forget_does_not_wait_for_a_held_lock():
    owner = _Owner()
    redaction.register(owner, [SECRET])
    with redaction._LOCK:  # as when the collector fires inside register() or held()
        assert not _in_thread(redaction.forget, id(owner)).is_alive(), "forget blocked"
        assert not _in_thread(redaction.held).is_alive(), "held blocked"
    redaction.forget(id(owner))
    assert SECRET not in redaction.held()


def test_a_queued_forget_does_not_drop_a_new_owner_at_the_same_id():
    owner = _Owner()
    redaction.register(owner, [SECRET])
    with redaction._LOCK:  # the forget is only queued
        _in_thread(redaction.forget, id(owner))
    redaction.register(owner, [OTHER])  # the same id, as a new object may get
    assert OTHER in redaction.held()
    redaction.forget(id(owner))
    assert OTHER not in redaction.held()
