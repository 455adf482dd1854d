"""A fault-injection soak: randomized devices against real servers, and a history checker.

`python -m soak` (``make soak``) runs seeded workloads (``soak.device``, one process per
device) against real ``oversync-server serve`` processes behind a fault proxy
(``soak.proxy``) on a real PostgreSQL (``soak.cluster``), injects faults (``soak.faults``),
then checks the recorded histories (``soak.checker``). docs/soak.md explains the design.
"""
