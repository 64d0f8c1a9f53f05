"""Syrup's API server: the REST API under ``/api/v1``, webhooks, metrics and the web UI.

The server runs beside a GitOps controller in the same event loop (``syrup up``): it reads
from the controller's watch-based cache (so listing a thousand apps touches no network) and
writes Applications, AppProjects and repository Secrets through the Kubernetes API, the way
Argo CD's API server does, so the controller reacts to the same objects ``kubectl`` sees.
"""
