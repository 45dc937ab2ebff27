"""Raft consensus for swarm managers.

``node.RaftNode`` is a pure, synchronous Raft state machine: time advances only through
``tick()``, randomness comes from an injected ``random.Random``, and everything it wants done
(persist, send, apply) is handed out as a ``Ready`` batch that a driver processes before calling
``advance()``. Around it: ``messages`` (the data exchanged), ``log`` and ``storage`` (the log
over a ``Storage``; ``MemoryStorage`` in memory), ``progress`` and ``readonly`` (leader
bookkeeping), ``config`` (tuning). For testing: ``sim`` drives a cluster over a faulty network,
``invariants`` checks Raft's safety properties while it runs, ``scenario`` runs seeded
fault-injection scenarios, and ``linearizability`` checks client histories.
"""
