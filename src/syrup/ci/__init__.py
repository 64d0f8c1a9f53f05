"""The CI runner: a repository's GitHub Actions workflows, run on this machine.

Layers, bottom up (each module imports only those below it):

* :mod:`globbing`, :mod:`expressions` (the ``${{ }}`` language on lark), :mod:`commands`
  (workflow commands, command files, masking) and :mod:`secrets` (the encrypted store);
* :mod:`workflows` (loading and validation), :mod:`events` (what triggers what);
* :mod:`planning` (jobs, reusable workflows, matrices, order), :mod:`records` (SQLite);
* :mod:`processes` (one step's process group), :mod:`jobs` (one job instance),
  :mod:`actions` (``uses:`` steps), :mod:`docker_shim` (``docker`` on buildah);
* :mod:`running` (runs, the ``needs`` graph, concurrency, cancellation).

Other components use :func:`running.open_runner`, :class:`running.RunRequest`,
:func:`running.make_event`, :func:`planning.render` and :func:`records.open_store`; the CLI
(``syrup ci``) is built on exactly those. The runner does not import the controller, the
cluster or the image updater (``syrup/update-image`` looks the updater up at run time).

NB: this package module imports nothing: the ``docker`` command of every job starts
``python -m syrup.ci.docker_shim``, which must not pay for loading the runner.
"""
