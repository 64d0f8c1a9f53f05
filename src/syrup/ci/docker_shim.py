"""The ``docker`` command jobs see: a subset of the Docker CLI implemented on buildah.

Supported: ``build`` (and ``buildx build``) with ``-f``, repeatable ``-t``, ``--build-arg``,
``--target``, ``--secret``, ``--iidfile``, ``--push`` and ``--platform`` (accepted; the image
is built for this host's platform, with a notice when another one was asked for), ``tag``,
``push``, ``login`` (with ``--password-stdin``), ``images`` and ``pull``. Images live in one
buildah store under the data dir (vfs storage driver, chroot isolation: both work as root
without a daemon or overlay mounts); registry credentials are in an auth file there (0600).

Registries on loopback (``localhost``, ``127.0.0.1``) are reached over plain HTTP, as the
Docker CLI does for them; any other registry must speak TLS.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import stat
import subprocess
import sys
from pathlib import Path

_INSECURE_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def install(path: Path, *, data_dir: Path, python: str) -> None:
    """Write the ``docker`` executable of a job (a tiny script calling this module)."""
    source_root = Path(__file__).resolve().parents[2]
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH='{source_root}' exec '{python}' -m syrup.ci.docker_shim "
        f"--data-dir '{data_dir}' \"$@\"\n",
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _store_args(data_dir: Path) -> list[str]:
    base = data_dir / "ci" / "buildah"
    return [
        "--root",
        str(base / "root"),
        "--runroot",
        str(base / "runroot"),
        "--storage-driver",
        "vfs",
    ]


def _authfile(data_dir: Path) -> Path:
    path = data_dir / "ci" / "buildah" / "auth.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write('{"auths": {}}')
    return path


def _registry(image: str) -> str | None:
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def _tls_flag(registry: str | None) -> list[str]:
    host = (
        (registry or "").rsplit(":", 1)[0]
        if registry and not registry.startswith("[")
        else registry
    )
    insecure = host in _INSECURE_HOSTS or (registry or "").startswith(_INSECURE_HOSTS)
    return ["--tls-verify=false"] if insecure else []


def _buildah(data_dir: Path, args: list[str], *, stdin: bytes | None = None) -> int:
    binary = shutil.which("buildah")
    if binary is None:
        print(
            "docker: buildah is not installed on this host (apt-get install buildah); "
            "Syrup implements docker commands in jobs on buildah",
            file=sys.stderr,
        )
        return 127
    command = [binary, *_store_args(data_dir), *args]
    env = {**os.environ, "BUILDAH_ISOLATION": "chroot", "STORAGE_DRIVER": "vfs"}
    completed = subprocess.run(command, input=stdin, env=env, check=False)
    return completed.returncode


def _build(data_dir: Path, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker build", add_help=False)
    parser.add_argument("-f", "--file")
    parser.add_argument("-t", "--tag", action="append", default=[])
    parser.add_argument("--build-arg", action="append", default=[])
    parser.add_argument("--target")
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--platform")
    parser.add_argument("--iidfile")
    parser.add_argument("--push", action="store_true")
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--pull", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--progress")
    parser.add_argument("--label", action="append", default=[])
    parser.add_argument("context")
    try:
        options = parser.parse_args(argv)
    except SystemExit:
        return 2
    args = ["bud", "--isolation", "chroot", "--layers"]
    if options.file:
        args += ["-f", options.file]
    for tag in options.tag:
        args += ["-t", tag]
    for build_arg in options.build_arg:
        args += ["--build-arg", build_arg]
    for label in options.label:
        args += ["--label", label]
    if options.target:
        args += ["--target", options.target]
    for secret in options.secret:
        args += ["--secret", secret]
    if options.iidfile:
        args += ["--iidfile", options.iidfile]
    if options.no_cache:
        args.append("--no-cache")
    if options.platform:
        host = "arm64" if platform.machine().lower() in ("aarch64", "arm64") else "amd64"
        if not options.platform.endswith(host):
            print(
                f"docker build: --platform {options.platform} accepted; building for this "
                f"host's linux/{host}",
                file=sys.stderr,
            )
    args.append(options.context)
    code = _buildah(data_dir, args)
    if code != 0 or not options.push:
        return code
    for tag in options.tag:
        code = _push(data_dir, [tag])
        if code != 0:
            return code
    return 0


def _push(data_dir: Path, argv: list[str]) -> int:
    images = [arg for arg in argv if not arg.startswith("-")]
    if len(images) != 1:
        print("docker push: expected one image", file=sys.stderr)
        return 2
    image = images[0]
    registry = _registry(image)
    if registry is None:
        print(
            f"docker push: {image} names no registry host; tag it registry/name:tag",
            file=sys.stderr,
        )
        return 1
    args = [
        "push",
        "--authfile",
        str(_authfile(data_dir)),
        *_tls_flag(registry),
        image,
        f"docker://{image}",
    ]
    return _buildah(data_dir, args)


def _login(data_dir: Path, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker login", add_help=False)
    parser.add_argument("-u", "--username", default="")
    parser.add_argument("-p", "--password")
    parser.add_argument("--password-stdin", action="store_true")
    parser.add_argument("registry", nargs="?", default="docker.io")
    try:
        options = parser.parse_args(argv)
    except SystemExit:
        return 2
    if options.password_stdin:
        password = sys.stdin.read().rstrip("\n")
    elif options.password is not None:
        password = options.password
    else:
        print("docker login: give --password-stdin or -p", file=sys.stderr)
        return 2
    args = [
        "login",
        "--authfile",
        str(_authfile(data_dir)),
        *_tls_flag(options.registry),
        "-u",
        options.username,
        "--password-stdin",
        options.registry,
    ]
    return _buildah(data_dir, args, stdin=password.encode())


def main(argv: list[str]) -> int:
    """Dispatch a docker command line to buildah."""
    if len(argv) < 2 or argv[0] != "--data-dir":
        print("docker: this command is provided by Syrup's CI runner", file=sys.stderr)
        return 2
    data_dir = Path(argv[1])
    args = argv[2:]
    if args[:1] == ["buildx"]:
        args = args[1:]
    if not args:
        print("usage: docker build|tag|push|login|images|pull ...", file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    if command == "build":
        return _build(data_dir, rest)
    if command == "push":
        return _push(data_dir, rest)
    if command == "login":
        return _login(data_dir, rest)
    if command == "tag":
        if len(rest) != 2:
            print("docker tag: expected SOURCE TARGET", file=sys.stderr)
            return 2
        return _buildah(data_dir, ["tag", *rest])
    if command == "images":
        return _buildah(data_dir, ["images", *rest])
    if command == "pull":
        image = next((arg for arg in rest if not arg.startswith("-")), "")
        auth = ["--authfile", str(_authfile(data_dir))]
        return _buildah(data_dir, ["pull", *auth, *_tls_flag(_registry(image)), image])
    if command in ("version", "info"):
        print("Syrup docker shim on buildah")
        return _buildah(data_dir, ["version"])
    print(
        f"docker {command}: not supported by Syrup's docker command "
        "(build, tag, push, login, images, pull)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
