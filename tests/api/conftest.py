"""One ``syrup up --kubeconfig`` per test worker, on the worker's shared local cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.harness import Up, start_up
from tests.conftest import Cluster


@pytest.fixture(scope="session")
def up(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir = tmp_path_factory.mktemp("up")
    running = start_up(
        data_dir, kubeconfig=cluster.kubeconfig, args=["--no-demo", "--refresh-seconds", "600"]
    )
    running.token = running.login()
    yield running
    running.stop()
