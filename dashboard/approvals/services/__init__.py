"""Services of migration requests, split by concept.

``requests`` (create, cancel), ``decisions`` (approve, reject, expire, who may
decide), ``dispatch`` (enqueue after commit, redispatch), ``execution``
(claim, lock, check, run, reap). Views and tasks call these; status changes
go through ``dashboard.approvals.transitions``.
"""
