"""Run the local cluster with explicit workload settings, as ``syrup cluster serve`` does.

Usage: ``python _serve.py DATA_DIR PORT SETTINGS_JSON``. Tests need a faster clock or a
registry; this passes :class:`syrup.cluster.workloads.Settings` straight to the real server
entry point, so the process is the same server a user runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from syrup import logs
from syrup.cluster import server, workloads


def main() -> None:
    data_dir, port, raw = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    logs.configure(level="INFO")
    config = workloads.Settings(**json.loads(raw))
    server.run(server.ServeSettings(data_dir=Path(data_dir), port=port, workloads=config))


if __name__ == "__main__":
    main()
