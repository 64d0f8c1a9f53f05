"""The updater's configuration file: one YAML document, validated on load.

Every error names the key that is wrong (``repos[0].branch: field required``) and the file.
Credentials are never written in the file itself: they are references to a file, an
environment variable or a Kubernetes Secret (``namespace/name`` + ``key``), resolved only when
used, so the file can be committed.

Example::

    repos:
      - url: https://github.com/wafflestudio/waffle-world.git
        branch: main
        paths: [apps/]
    registries:
      - host: 405906814034.dkr.ecr.ap-northeast-2.amazonaws.com
        aliases: [ecr.example.internal]
        username: AWS
        password: {file: /run/secrets/ecr-token}
    images:
      - image: 405906814034.dkr.ecr.ap-northeast-2.amazonaws.com/snutt-dev/snutt-core
        policy: {ordering: numerical}
        poll: true
    identity: {name: syrup-image-updater, email: image-updater@syrup.invalid}
    message: "Automated commit by ECR push ({repository}:{tag})"
    server: {token: {env: SYRUP_IMAGE_TOKEN}}
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from syrup.errors import ConfigError, SyrupError
from syrup.updater import policies, refs

DEFAULT_MESSAGE = "Automated commit by image push ({repository}:{tag})"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
    """Where a credential lives: exactly one of ``file``, ``env`` or ``secret`` + ``key``."""

    file: Path | None = None
    env: str | None = None
    secret: str | None = Field(default=None, description="namespace/name of a Kubernetes Secret")
    key: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("file", "env", "secret") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, env or secret")
        if self.secret is not None and (self.key is None or "/" not in self.secret):
            raise ValueError("secret must be 'namespace/name' with a key")
        return self

    def resolve(self) -> str:
        """Read the credential now; raise :class:`ConfigError` when it cannot be found."""
        if self.file is not None:
            try:
                return self.file.expanduser().read_text().strip()
            except OSError as error:
                raise ConfigError(f"credential file {self.file}: {error.strerror}") from error
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"credential variable {self.env} is not set")
            return value
        return _read_secret(str(self.secret), str(self.key))


class Identity(_Model):
    name: str = "syrup-image-updater"
    email: str = "image-updater@syrup.invalid"


class RepoConfig(_Model):
    url: str = Field(description="URL or local path of the GitOps repository")
    branch: str = "main"
    paths: tuple[str, ...] = ()
    message: str | None = None


class RegistryConfig(_Model):
    host: str
    aliases: tuple[str, ...] = ()
    insecure: bool = Field(default=False, description="plain HTTP (a registry on loopback)")
    username: str | None = None
    password: SecretRef | None = None


class PolicyConfig(_Model):
    ordering: Literal["auto", "semver", "numerical", "alphabetical"] = "auto"
    order: Literal["asc", "desc"] = "asc"
    range: str | None = None
    pattern: str | None = None
    extract: str | None = None


class ImageConfig(_Model):
    image: str
    policy: PolicyConfig = PolicyConfig()
    pin_digest: bool = False
    poll: bool = False


class HelmKeys(_Model):
    repository: str = "repository"
    tag: str = "tag"


class PushConfig(_Model):
    attempts: int = Field(default=5, ge=1)
    backoff_seconds: float = Field(default=0.2, ge=0)


class SourceConfig(_Model):
    hmac_secret: SecretRef


class ServerConfig(_Model):
    token: SecretRef | None = None
    sources: dict[str, SourceConfig] = {}


class UpdaterConfig(_Model):
    """The whole file."""

    repos: tuple[RepoConfig, ...] = ()
    registries: tuple[RegistryConfig, ...] = ()
    images: tuple[ImageConfig, ...] = ()
    identity: Identity = Identity()
    message: str = DEFAULT_MESSAGE
    helm_keys: tuple[HelmKeys, ...] = (HelmKeys(),)
    push: PushConfig = PushConfig()
    poll_interval_seconds: float = Field(default=60, gt=0)
    server: ServerConfig = ServerConfig()

    @model_validator(mode="after")
    def _check_references(self) -> UpdaterConfig:
        for index, image in enumerate(self.images):
            where = f"images[{index}]"
            refs.parse_repository(image.image, where=f"{where}.image")
            policy = image.policy
            if image.poll and policy.ordering == "auto":
                raise ConfigError(
                    f"{where}.policy.ordering: polling needs semver, numerical "
                    "or alphabetical to choose the newest tag"
                )
            policies.compile_policy(
                ordering=policy.ordering,
                direction=policy.order,
                range=policy.range,
                pattern=policy.pattern,
                extract=policy.extract,
                where=f"{where}.policy",
            )
        for index, repo in enumerate(self.repos):
            _check_template(repo.message or self.message, where=f"repos[{index}].message")
        return self


def load(path: Path) -> UpdaterConfig:
    """Read and validate a configuration file; :class:`ConfigError` names the file and key."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    return parse(raw, where=str(path))


def parse(raw: object, *, where: str = "config") -> UpdaterConfig:
    """Validate an already-loaded document."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping")
    try:
        return UpdaterConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{_location(problem['loc'])}: {problem['msg']}" for problem in error.errors()
        )
        raise ConfigError(f"{where}: {problems}") from error
    except SyrupError as error:
        # Validators raise our own errors (a bad image name, regex or template) unwrapped.
        raise ConfigError(f"{where}: {error}") from error


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _check_template(template: str, *, where: str) -> None:
    try:
        template.format(repository="r", tag="t", image="i", digest="d")
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(
            f"{where}: template may use {{repository}}, {{tag}}, {{image}}, {{digest}} ({error})"
        ) from error


def _read_secret(reference: str, key: str) -> str:
    """Read one key of a Kubernetes Secret through kubectl (the cluster is another component)."""
    namespace, _, name = reference.partition("/")
    kubectl = shutil.which("kubectl") or str(Path(sys.executable).with_name("kubectl"))
    result = subprocess.run(
        [kubectl, "get", "secret", name, "-n", namespace, "-o", f"jsonpath={{.data.{key}}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not result.stdout:
        raise ConfigError(f"secret {reference} key {key}: {result.stderr.strip() or 'empty'}")
    return base64.b64decode(result.stdout).decode()
