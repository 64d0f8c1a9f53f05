"""Syrup: a GitOps delivery platform in one Python package.

The package is layered (see ``docs/architecture.md``): small shared utilities at the bottom
(:mod:`syrup.errors`, :mod:`syrup.logs`, :mod:`syrup.paths`), then the four components that
never import each other's internals — the local cluster (:mod:`syrup.cluster`), the GitOps
controller (:mod:`syrup.gitops`), the image updater (:mod:`syrup.updater`) and the CI runner
(:mod:`syrup.ci`) — and the entry points (:mod:`syrup.cli`, :mod:`syrup.api`) on top.
"""

__version__ = "0.1.0"
