"""The object engine behind the local cluster's writes: apply, patch, defaults, validation.

Pure, synchronous functions over plain JSON dicts, so they can be tested without a server and
called by storage on every write (through :mod:`syrup.cluster.admission`):

* :mod:`.schemas`: the schema of every built-in kind and registered custom resource;
* :mod:`.defaults`: what the API server fills in;
* :mod:`.validation`: schema and semantic checks, unknown-field handling and pruning;
* :mod:`.smp`: strategic merge patch;
* :mod:`.managed`: ``managedFields``, server-side apply and its conflicts;
* :mod:`.openapi`: the ``/openapi/v2`` and ``/openapi/v3`` documents.
"""

from syrup.cluster.apply import defaults, fieldsets, managed, openapi, schemas, smp, validation
from syrup.cluster.apply.schemas import Schema

__all__ = [
    "Schema",
    "defaults",
    "fieldsets",
    "managed",
    "openapi",
    "schemas",
    "smp",
    "validation",
]
