"""The Kustomize source, built by ``kubectl kustomize`` of the pinned ``kubectl``.

The Application's ``kustomize`` overrides (images, namePrefix, nameSuffix, commonLabels,
namespace) are what Argo CD applies with ``kustomize edit``; Syrup writes them into a temporary
overlay whose only resource is the app's folder, so the repository snapshot stays untouched
and shared. Image overrides take ``kustomize edit set image`` forms: ``name:tag``,
``name=new:tag``, ``name@sha256:...``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from syrup.gitops import models
from syrup.gitops.render import _manifests

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def kubectl_path() -> str:
    """The ``kubectl`` next to this interpreter (the pinned one), else the one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise _manifests.RenderError("kubectl is not installed", where="kustomize")
    return found


def _split_image(ref: str) -> dict[str, str]:
    out: dict[str, str] = {}
    if "@" in ref:
        ref, out["digest"] = ref.split("@", 1)
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        ref, out["newTag"] = ref[:colon], ref[colon + 1 :]
    out["newName"] = ref
    return out


def image_override(expression: str) -> dict[str, str]:
    """One ``images`` entry of a kustomization from an Argo CD image override."""
    if "=" in expression:
        name, ref = expression.split("=", 1)
        return {"name": name, **_split_image(ref)}
    parts = _split_image(expression)
    name = parts.pop("newName")
    return {"name": name, **parts}


def _overlay(app_dir: Path, overlay_dir: Path, spec: models.KustomizeSource) -> dict[str, Any]:
    # Kustomize refuses absolute roots: point at the app folder relatively.
    overlay: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(app_dir, overlay_dir)],
    }
    if spec.images:
        overlay["images"] = [image_override(i) for i in spec.images]
    if spec.name_prefix:
        overlay["namePrefix"] = spec.name_prefix
    if spec.name_suffix:
        overlay["nameSuffix"] = spec.name_suffix
    if spec.common_labels:
        overlay["commonLabels"] = dict(spec.common_labels)
    if spec.namespace:
        overlay["namespace"] = spec.namespace
    return overlay


def render(
    app_dir: Path, spec: models.KustomizeSource | None, *, repo_root: Path
) -> list[_manifests.Manifest]:
    rel = app_dir.relative_to(repo_root).as_posix()
    with tempfile.TemporaryDirectory(prefix="syrup-kustomize-") as tmp:
        target = app_dir
        if spec is not None and spec != models.KustomizeSource():
            target = Path(tmp)
            (target / "kustomization.yaml").write_text(
                yaml.safe_dump(_overlay(app_dir, target, spec))
            )
        proc = subprocess.run(
            [kubectl_path(), "kustomize", str(target)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    if proc.returncode != 0:
        message = proc.stderr.strip().replace(str(repo_root) + "/", "").replace(tmp, "<overlay>")
        raise _manifests.RenderError(f"kustomize build failed: {message}", where=rel)
    return _manifests.parse(proc.stdout, where=f"{rel} (kustomize output)")
