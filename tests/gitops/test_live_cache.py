"""The live cache keeps the newest version of each object, whatever order answers arrive in."""

from __future__ import annotations

from typing import Any

from syrup.kube import cache as kcache
from syrup.kube import client as kclient


def cm(rv: str, *, app: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "c",
            "namespace": "n",
            "resourceVersion": rv,
            "labels": {"app.kubernetes.io/instance": app},
        },
    }


def live_cache() -> kcache.LiveCache:
    discovery = kclient.Discovery(resources=(), preferred={}, server_version="v1.30.0")
    client: Any = None  # record/forget never reach the API
    return kcache.LiveCache(client, discovery, tracking_label="app.kubernetes.io/instance")


KEY = kcache.Key("", "ConfigMap", "n", "c")


def test_a_late_write_answer_does_not_replace_a_newer_watched_object() -> None:
    cache = live_cache()
    cache._store(KEY, cm("12"))  # the watch delivered version 12
    cache.record(cm("11"))  # the apply that produced 11 answers late
    assert cache.get(KEY) == cm("12")
    cache.record(cm("13"))
    assert cache.get(KEY) == cm("13")
    assert [o["metadata"]["resourceVersion"] for o in cache.tracked("shop")] == ["13"]


def test_a_late_write_answer_does_not_revive_a_deleted_object() -> None:
    cache = live_cache()
    cache._store(KEY, cm("12"))
    cache._tombstone(KEY, cm("14"))
    cache.record(cm("13"))
    assert cache.get(KEY) is None and cache.tracked("shop") == []
    cache.record(cm("15"))  # created again afterwards
    assert cache.get(KEY) == cm("15")
