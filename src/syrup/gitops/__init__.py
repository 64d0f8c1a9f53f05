"""Syrup's GitOps engine: Applications from Git, rendered, diffed, synced and healed.

Layers, bottom up: ``models`` (Argo CD's Application/AppProject), ``git`` (cached clones),
``render`` (Helm, Kustomize, directories), ``health``, ``diff``, ``order`` (pure functions over
manifests), ``sync`` (plan/compare/apply/prune against a cluster through :mod:`syrup.kube`) and
``controller`` (the reconcile loop). Other components use :func:`controller.run` and
:meth:`controller.Controller.refresh_repo`.
"""
