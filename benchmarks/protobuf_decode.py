"""Decode and encode timings of Kubernetes protobuf bodies (kubectl's typed writes).

Prints, per kind, the body size and the best-of-5 CPU time per decode and encode, and the
one-time cost of loading the field table. Run: .venv/bin/python benchmarks/protobuf_decode.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.test_protobuf import GOLDEN

from syrup.cluster import protobuf


def best_us(fn: Callable[[], object], n: int = 300) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n)
    return best * 1e6


def main() -> None:
    t = time.process_time()
    protobuf.schema()
    print(f"field table load: {(time.process_time() - t) * 1e3:.1f} ms CPU")
    for obj in GOLDEN:
        body = protobuf.encode(obj)
        dec = best_us(lambda body=body: protobuf.decode(body))
        enc = best_us(lambda obj=obj: protobuf.encode(obj))
        print(f"{obj['kind']:<28} {len(body):5d} B  decode {dec:7.1f} us  encode {enc:7.1f} us")


if __name__ == "__main__":
    main()
