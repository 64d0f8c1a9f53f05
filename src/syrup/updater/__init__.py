"""The image updater: registry pushes become commits in the GitOps repository.

Layers, bottom up: :mod:`refs` (image references), :mod:`events` (payload formats),
:mod:`policies` (tag ordering), :mod:`edits` (surgical YAML edits), :mod:`config` (the
configuration file), :mod:`store` (the durable SQLite queue), :mod:`gitrepo` (working trees,
commits and pushes), :mod:`updating` (the apply loop), :mod:`registry` and :mod:`polling`
(Registry API v2), :mod:`http` (the intake). Other components use :class:`Updater`,
:class:`UpdaterSettings` and :func:`http.router` / :func:`http.create_app`; the rest is internal.
"""

from syrup.updater.updating import RepoTarget, Updater, UpdaterSettings

__all__ = ["RepoTarget", "Updater", "UpdaterSettings"]
