"""The ``docker`` command of jobs, on buildah, against a real registry on loopback.

The registry is Debian's ``docker-registry`` (the CNCF distribution server) started on a
free port for each test and stopped after it. The base image is built from scratch by the
test (a static busybox), since there is no internet registry to pull one from.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syrup.ci.records import Conclusion
from tests.ci.conftest import RunFn, make_repo

BASE_IMAGE = "localhost/syrup-test-base:1"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """``host:port`` of a fresh registry; the process is stopped when the test ends."""
    binary = shutil.which("docker-registry")
    assert binary, "docker-registry is not installed (scripts/bootstrap --test installs it)"
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'registry-data'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}', secret: test-secret}}\n"
    )
    process = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "registry did not start"
            assert process.poll() is None, "registry exited"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def build_base_image(data_dir: Path, tmp_path: Path) -> None:
    """A base image from scratch: a static busybox and its applet links, in the job store."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox is not installed (busybox-static)"
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    for applet in ("sh", "echo", "cat", "test", "ls", "httpd", "mkdir"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    store = data_dir / "ci" / "buildah"
    buildah = [
        "buildah",
        "--root",
        str(store / "root"),
        "--runroot",
        str(store / "runroot"),
        "--storage-driver",
        "vfs",
    ]

    def run(*args: str) -> str:
        return subprocess.run(
            [*buildah, *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    container = run("from", "scratch")
    run("copy", container, str(rootfs), "/")
    run("config", "--cmd", '["/bin/sh"]', "--env", "PATH=/bin", container)
    run("commit", "--quiet", container, BASE_IMAGE)
    run("rm", container)


APP_FILES = {
    "www/index.html": "<h1>hello from the sample app</h1>\n",
    "server.py": '''
        """A tiny HTTP server for the sample app: serves www/ and /healthz."""
        import functools
        import http.server
        import sys


        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/healthz":
                    body = b"ok"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()


        def make(port):
            handler = functools.partial(Handler, directory="www")
            return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


        if __name__ == "__main__":
            make(int(sys.argv[1])).serve_forever()
    ''',
    "test_server.py": """
        import threading
        import unittest
        import urllib.request

        import server


        class ServerTest(unittest.TestCase):
            def test_serves_the_page_and_health(self):
                httpd = server.make(0)
                threading.Thread(target=httpd.serve_forever, daemon=True).start()
                base = f"http://127.0.0.1:{httpd.server_address[1]}"
                try:
                    page = urllib.request.urlopen(base + "/").read().decode()
                    health = urllib.request.urlopen(base + "/healthz").read()
                finally:
                    httpd.shutdown()
                self.assertIn("hello from the sample app", page)
                self.assertEqual(health, b"ok")
    """,
    "Dockerfile": f"""
        FROM {BASE_IMAGE}
        ARG VERSION=dev
        COPY www /www
        RUN echo "$VERSION" > /www/version.txt && test -s /www/index.html
        EXPOSE 8080
        CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
    """,
}


def workflow(registry: str) -> str:
    return f"""
        name: release
        on:
          push:
            branches: [main]
        env:
          REGISTRY: {registry}
          IMAGE: team/sample-app
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: python3 -m unittest -v
          image:
            needs: test
            runs-on: ubuntu-latest
            outputs:
              image: ${{{{ steps.push.outputs.image }}}}
            steps:
              - uses: actions/checkout@v4
              - name: Login
                env:
                  PASSWORD: ${{{{ secrets.REGISTRY_PASSWORD }}}}
                run: echo "$PASSWORD" | docker login $REGISTRY -u ci --password-stdin
              - name: Build
                run: |
                  docker build -t $REGISTRY/$IMAGE:${{{{ github.run_number }}}} \\
                    --build-arg VERSION=${{{{ github.sha }}}} --platform linux/amd64 .
              - id: push
                run: |
                  docker push $REGISTRY/$IMAGE:${{{{ github.run_number }}}}
                  docker images
                  echo "image=$REGISTRY/$IMAGE:${{{{ github.run_number }}}}" >> "$GITHUB_OUTPUT"
          with-actions:
            needs: test
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: docker/setup-buildx-action@v3
              - uses: docker/login-action@v3
                with:
                  registry: ${{{{ env.REGISTRY }}}}
                  username: ci
                  password: ${{{{ secrets.REGISTRY_PASSWORD }}}}
              - id: meta
                uses: docker/metadata-action@v5
                with:
                  images: ${{{{ env.REGISTRY }}}}/team/sample-app-2
                  tags: |
                    type=raw,value=${{{{ github.run_number }}}}
                    type=ref,event=branch
              - uses: docker/build-push-action@v5
                with:
                  context: .
                  push: true
                  tags: ${{{{ steps.meta.outputs.tags }}}}
                  build-args: |
                    VERSION=actions
    """


def manifest_status(registry: str, repository: str, tag: str) -> int:
    response = httpx.get(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        headers={"Accept": MANIFEST_TYPES},
        timeout=10,
    )
    return response.status_code


def test_a_sample_app_is_tested_built_and_pushed_with_the_run_number_as_tag(
    tmp_path: Path, registry: str, ci_run: RunFn
) -> None:
    data = tmp_path / "data"
    build_base_image(data, tmp_path)
    repo = make_repo(
        tmp_path / "app", {**APP_FILES, ".github/workflows/release.yml": workflow(registry)}
    )

    outcome = ci_run(repo, data_dir=data, secrets={"REGISTRY_PASSWORD": "registry-pass"})

    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.all_logs()
    assert "Ran 1 test" in outcome.log("test")
    assert outcome.result.jobs["image"].outputs == {"image": f"{registry}/team/sample-app:1"}
    assert manifest_status(registry, "team/sample-app", "1") == 200
    tags = httpx.get(f"http://{registry}/v2/team/sample-app-2/tags/list", timeout=10).json()
    assert sorted(tags["tags"]) == ["1", "main"]
    assert "registry-pass" not in outcome.all_logs()
    assert f"{registry}/team/sample-app" in outcome.log("image")  # `docker images` lists it

    # The next push builds the next run number.
    second = ci_run(repo, data_dir=data, job="image", secrets={"REGISTRY_PASSWORD": "pass-word-2"})
    assert second.result.conclusion is Conclusion.SUCCESS, second.all_logs()
    assert manifest_status(registry, "team/sample-app", "2") == 200


def test_a_failing_docker_build_fails_the_step_with_buildahs_message_and_pushes_nothing(
    tmp_path: Path, registry: str, ci_run: RunFn
) -> None:
    data = tmp_path / "data"
    build_base_image(data, tmp_path)
    broken = {
        **APP_FILES,
        "Dockerfile": f"FROM {BASE_IMAGE}\nRUN echo compiling && exit 7\n",
        ".github/workflows/release.yml": workflow(registry),
    }
    repo = make_repo(tmp_path / "app", broken)

    outcome = ci_run(repo, data_dir=data, job="image", secrets={"REGISTRY_PASSWORD": "pass-word-1"})

    assert outcome.result.conclusion is Conclusion.FAILURE
    log = outcome.log("image")
    assert "compiling" in log
    assert "exit status 7" in log  # buildah's own report of the failed RUN instruction
    steps = {s.name: s.conclusion for s in outcome.store.steps(outcome.job("image").id)}
    assert steps["Build"] is Conclusion.FAILURE
    assert steps["Run docker push $REGISTRY/$IMAGE:${{ github.run_number }}"] is Conclusion.SKIPPED
    response = httpx.get(f"http://{registry}/v2/team/sample-app/tags/list", timeout=10)
    assert response.status_code == 404


def test_unsupported_docker_commands_fail_clearly(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/ci.yml": """
                on: push
                jobs:
                  run:
                    runs-on: ubuntu-latest
                    steps:
                      - run: docker run --rm alpine echo hi
            """
        },
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    assert "docker run: not supported by Syrup's docker command" in outcome.log("run")
