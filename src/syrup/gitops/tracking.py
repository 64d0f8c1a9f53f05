"""How an Application marks the objects it deploys, and how it recognises them again.

Argo CD offers three tracking methods (REFERENCE.md, "Tracking"; argo-cd user guide
"Resource Tracking"), chosen once for the whole installation:

* ``label`` (the default): ``app.kubernetes.io/instance: <app>``. Cheap and familiar, but any
  object that carries the label counts as the app's, so a copy made by another tool (or a
  Helm chart that sets the same label) is pruned with the app.
* ``annotation``: ``argocd.argoproj.io/tracking-id: <app>:<group>/<kind>:<namespace>/<name>``.
  The value names the object it was written on, so a copy carrying the annotation under
  another kind, namespace or name is recognised as not the app's own and never pruned.
* ``annotation+label``: both are written, the annotation decides; the label is only there for
  tools that select by it.

Recognition reads only the object itself, so the live cache can index objects by owner as it
stores them (one dictionary lookup per object, no extra state).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from syrup import errors
from syrup.gitops import models
from syrup.kube import cache as kcache

ANNOTATION = "argocd.argoproj.io/tracking-id"
LABEL = models.TRACKING_LABEL


class Method(StrEnum):
    LABEL = "label"
    ANNOTATION = "annotation"
    ANNOTATION_LABEL = "annotation+label"


class InvalidMethod(errors.ConfigError):
    """A tracking method the controller does not know."""


def parse_method(value: str) -> Method:
    try:
        return Method(value.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in Method)
        raise InvalidMethod(f"tracking method {value!r}: expected one of {choices}") from None


def tracking_id(app: str, key: kcache.Key) -> str:
    """The annotation value Argo CD writes: ``<app>:<group>/<kind>:<namespace>/<name>``."""
    return f"{app}:{key.group}/{key.kind}:{key.namespace}/{key.name}"


@dataclass(frozen=True)
class Tracker:
    """One tracking method: stamps desired objects, tells which app a live object is part of."""

    method: Method = Method.LABEL

    @property
    def writes_label(self) -> bool:
        return self.method is not Method.ANNOTATION

    @property
    def uses_annotation(self) -> bool:
        return self.method is not Method.LABEL

    def stamp(self, obj: dict[str, Any], *, app: str, key: kcache.Key) -> None:
        """Mark a desired object (in place) as ``app``'s; ``key`` is where it will live."""
        meta = obj.setdefault("metadata", {})
        if self.writes_label:
            meta["labels"] = {**(meta.get("labels") or {}), LABEL: app}
        if self.uses_annotation:
            annotations = meta.get("annotations") or {}
            meta["annotations"] = {**annotations, ANNOTATION: tracking_id(app, key)}

    def owner(self, obj: Mapping[str, Any] | None) -> str | None:
        """The app ``obj`` is part of, or None (a copy under another name is nobody's)."""
        if obj is None:
            return None
        meta = obj.get("metadata") or {}
        if not self.uses_annotation:
            value = (meta.get("labels") or {}).get(LABEL)
            return str(value) if value else None
        value = (meta.get("annotations") or {}).get(ANNOTATION)
        if not value or not meta.get("name"):
            return None
        app = str(value).partition(":")[0]
        key = _key(obj)
        if str(value) == tracking_id(app, key):
            return app
        # A hook created from ``generateName`` was stamped before the server named it.
        prefix = meta.get("generateName")
        if prefix and str(value) == tracking_id(app, dataclasses.replace(key, name=prefix)):
            return app
        return None


def _key(obj: Mapping[str, Any]) -> kcache.Key:
    meta = obj.get("metadata") or {}
    return kcache.Key(
        str(obj.get("apiVersion", "")).rpartition("/")[0],
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
    )


DEFAULT = Tracker()
