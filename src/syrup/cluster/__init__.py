"""The local cluster: a Kubernetes-API-compatible server backed by SQLite.

Layers inside (bottom to top): ``resources`` (the table of kinds served), ``storage`` (SQLite
plus the in-memory index and watch history), ``apply`` (patch, apply, defaults, validation),
``workloads`` (simulated controllers and nodes), ``server`` (HTTP routes, auth, TLS). Other
Syrup components talk to it only over HTTP, like any Kubernetes client.
"""
