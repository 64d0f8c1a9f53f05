"""``uses:`` steps: built-in actions, local actions and actions from a local directory.

Resolution order for ``uses: X``:

1. ``./path``: an action in the checked-out workspace (``action.yml``), of type
   ``composite`` or ``node*`` (run with the host's Node.js);
2. a built-in implementation of a widely used action, keyed by ``owner/repo`` (the ``@ref``
   is accepted and ignored: the built-in behaves like the current major version);
3. ``owner/repo[/path]@ref`` cloned from ``<actions dir>/owner/repo`` (a git repository);
4. otherwise a clear error naming the action and how to provide it.

Built-ins act on the job through :class:`~syrup.ci.jobs.JobState` (workspace, env, PATH,
logs, post steps) and return their outputs.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from syrup.ci import expressions, globbing, jobs
from syrup.ci.jobs import JobState, StepFailed, StepResult
from syrup.ci.records import Conclusion
from syrup.ci.workflows import Step
from syrup.errors import InvalidInput

Builtin = Callable[[JobState, dict[str, str], float], dict[str, str]]

_BUILTINS: dict[str, Builtin] = {}


def _builtin(*names: str) -> Callable[[Builtin], Builtin]:
    def register(function: Builtin) -> Builtin:
        for name in names:
            _BUILTINS[name] = function
        return function

    return register


def split_uses(uses: str) -> tuple[str, str | None, str]:
    """``owner/repo/path@ref`` → (``owner/repo``, ``path`` or None, ``ref``)."""
    name, _, ref = uses.partition("@")
    parts = name.split("/")
    repo = "/".join(parts[:2]).lower()
    sub = "/".join(parts[2:]) or None
    return repo, sub, ref


def is_builtin(uses: str) -> bool:
    repo, sub, _ = split_uses(uses)
    return sub is None and repo in _BUILTINS


def execute(
    state: JobState, step: Step, step_env: dict[str, str], extra: dict[str, Any]
) -> StepResult:
    """Run a ``uses:`` step (see the module docstring for the resolution order)."""
    uses = step.uses or ""
    inputs: dict[str, str] = extra["inputs"]
    deadline: float = extra["deadline"]
    if uses.startswith("docker://"):
        raise StepFailed(
            f"{uses}: container actions are not supported here (no container engine for jobs)"
        )
    if uses.startswith("./") or uses.startswith("../"):
        directory = (state.workspace / uses).resolve()
        return _run_action_dir(
            state,
            directory,
            uses=uses,
            inputs=inputs,
            env=step_env,
            deadline=deadline,
            annotations=extra["annotations"],
        )
    repo, sub, ref = split_uses(uses)
    if sub is None and repo in _BUILTINS:
        with_env = {**step_env}
        outputs = (
            _BUILTINS[repo](state, inputs, deadline)
            if not with_env
            else _with_env(state, with_env, lambda: _BUILTINS[repo](state, inputs, deadline))
        )
        return StepResult(Conclusion.SUCCESS, Conclusion.SUCCESS, outputs)
    directory = _from_actions_dir(state, uses, repo=repo, sub=sub, ref=ref)
    return _run_action_dir(
        state,
        directory,
        uses=uses,
        inputs=inputs,
        env=step_env,
        deadline=deadline,
        annotations=extra["annotations"],
    )


def _with_env(
    state: JobState, env: Mapping[str, str], call: Callable[[], dict[str, str]]
) -> dict[str, str]:
    saved = dict(state.env)
    state.env.update(env)
    try:
        return call()
    finally:
        added = {
            key: value for key, value in state.env.items() if key not in saved and key not in env
        }
        state.env.clear()
        state.env.update(saved)
        state.env.update(added)


def _from_actions_dir(state: JobState, uses: str, *, repo: str, sub: str | None, ref: str) -> Path:
    hint = (
        f"action {uses!r} is not built in; provide it as a git repository at "
        f"<actions dir>/{repo} (e.g. git clone https://github.com/{repo} "
        f"{state.run.actions_dir or '<actions dir>'}/{repo}) and pass --actions-dir"
    )
    if state.run.actions_dir is None:
        raise StepFailed(hint)
    source = state.run.actions_dir / repo
    if not (source / ".git").exists() and not (source / "HEAD").exists():
        raise StepFailed(hint)
    target = state.temp / "_actions" / repo / (ref or "HEAD")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        clone = subprocess.run(
            ["git", "clone", "--quiet", "--shared", str(source), str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if clone.returncode == 0 and ref:
            clone = subprocess.run(
                ["git", "-C", str(target), "checkout", "--quiet", ref],
                capture_output=True,
                text=True,
                check=False,
            )
        if clone.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise StepFailed(f"cannot check out {uses} from {source}: {clone.stderr.strip()}")
    return target / sub if sub else target


def _load_action(directory: Path, *, uses: str) -> dict[str, Any]:
    for name in ("action.yml", "action.yaml"):
        path = directory / name
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as error:
                raise InvalidInput(f"not valid YAML: {error}", where=str(path)) from error
            if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
                raise InvalidInput("an action needs a runs: mapping", where=str(path))
            return data
    raise StepFailed(f"action {uses}: no action.yml in {directory}")


def _action_inputs(
    action: Mapping[str, Any], given: Mapping[str, str], state: JobState
) -> dict[str, str]:
    declared = action.get("inputs") or {}
    result: dict[str, str] = {}
    for name, raw_spec in declared.items():
        spec = raw_spec if isinstance(raw_spec, dict) else {}
        if name in given:
            result[name] = given[name]
        elif "default" in spec:
            default = spec["default"]
            value = (
                expressions.interpolate(default, state.scope())
                if isinstance(default, str)
                else default
            )
            result[name] = expressions.to_string(value)
        else:
            result[name] = ""
    for name, value in given.items():
        result.setdefault(name, value)
    return result


def _run_action_dir(
    state: JobState,
    directory: Path,
    *,
    uses: str,
    inputs: dict[str, str],
    env: dict[str, str],
    deadline: float,
    annotations: list[Mapping[str, Any]],
) -> StepResult:
    action = _load_action(directory, uses=uses)
    runs = action["runs"]
    using = str(runs.get("using", ""))
    values = _action_inputs(action, inputs, state)
    if using == "composite":
        return _run_composite(state, action, directory, values, env=env, deadline=deadline)
    if using.startswith("node"):
        node = shutil.which("node", path=jobs.SYSTEM_PATH)
        if node is None:
            raise StepFailed(f"action {uses} runs on {using} but no node is installed on this host")
        input_env = {
            f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in values.items()
        }
        env_all = {**env, **input_env, "GITHUB_ACTION_PATH": str(directory)}
        result = StepResult(Conclusion.SUCCESS, Conclusion.SUCCESS)
        for phase in ("pre", "main"):
            script = runs.get(phase)
            if not script:
                continue
            result = jobs.run_with_files(
                state,
                [node, str(directory / str(script))],
                env=env_all,
                cwd=state.workspace,
                deadline=deadline,
                annotations=annotations,
            )
            if result.outcome is not Conclusion.SUCCESS:
                return result
        post = runs.get("post")
        if post:
            saved_state = dict(state.contexts.get("_state", {}))

            def run_post(job: JobState) -> None:
                jobs.run_with_files(
                    job,
                    [node, str(directory / str(post))],
                    env=env_all,
                    cwd=job.workspace,
                    deadline=job.deadline,
                    annotations=[],
                    state_values=saved_state,
                )

            state.post_steps.append((uses, run_post))
        return result
    raise StepFailed(f"action {uses} uses {using!r}; only composite and node actions run here")


def _run_composite(
    state: JobState,
    action: Mapping[str, Any],
    directory: Path,
    inputs: dict[str, str],
    *,
    env: dict[str, str],
    deadline: float,
) -> StepResult:
    steps_raw = action["runs"].get("steps") or []
    inner_steps: dict[str, dict[str, Any]] = {}
    saved_steps, saved_inputs = state.steps, state.contexts.get("inputs")
    state.steps = inner_steps
    state.contexts["inputs"] = inputs
    failed = False
    try:
        for index, raw in enumerate(steps_raw):
            step = Step(index=index, raw=raw)
            scope = state.scope(extra_env=env)
            if not expressions.evaluate_condition(
                raw.get("if"),
                expressions.Scope(
                    contexts=scope.contexts,
                    status=expressions.Status(failed=failed, cancelled=state.cancelled()),
                    workspace=state.workspace,
                ),
            ):
                continue
            step_env = {**env, "GITHUB_ACTION_PATH": str(directory)}
            for name, value in (raw.get("env") or {}).items():
                step_env[str(name)] = expressions.to_string(
                    expressions.interpolate(value, scope) if isinstance(value, str) else value
                )
            if step.uses is not None:
                given = {
                    str(k): expressions.to_string(
                        expressions.interpolate(v, scope) if isinstance(v, str) else v
                    )
                    for k, v in (raw.get("with") or {}).items()
                }
                result = execute(
                    state,
                    step,
                    step_env,
                    {"inputs": given, "deadline": deadline, "annotations": []},
                )
            else:
                if not raw.get("shell"):
                    raise StepFailed("composite action run steps need an explicit shell")
                script = expressions.to_string(expressions.interpolate(str(raw["run"]), scope))
                template, suffix = jobs._SHELLS.get(str(raw["shell"]), (str(raw["shell"]), ".sh"))
                path = state.temp / f"composite-{state.current_step}-{index}{suffix}"
                path.write_text(script, encoding="utf-8")
                argv = [str(path) if part == "{0}" else part for part in template.split()]
                cwd = (
                    state.workspace / str(raw["working-directory"])
                    if raw.get("working-directory")
                    else state.workspace
                )
                result = jobs.run_with_files(
                    state, argv, env=step_env, cwd=cwd, deadline=deadline, annotations=[]
                )
            if step.id:
                inner_steps[step.id] = {
                    "outputs": result.outputs,
                    "outcome": str(result.outcome),
                    "conclusion": str(result.conclusion),
                }
            if result.conclusion is Conclusion.FAILURE:
                failed = True
        outputs: dict[str, str] = {}
        scope = state.scope(extra_env=env)
        for name, spec in (action.get("outputs") or {}).items():
            value = spec.get("value") if isinstance(spec, dict) else None
            outputs[str(name)] = expressions.to_string(
                expressions.interpolate(str(value or ""), scope)
            )
    finally:
        state.steps = saved_steps
        state.contexts["inputs"] = saved_inputs
    conclusion = Conclusion.FAILURE if failed else Conclusion.SUCCESS
    return StepResult(conclusion, conclusion, outputs)


# ---- actions/checkout ------------------------------------------------------------------------


@_builtin("actions/checkout")
def _checkout(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    """Check out the event's commit (or ``ref``) from the run's repository into the workspace."""
    repository = inputs.get("repository") or ""
    own = str(state.contexts["github"]["repository"])
    if repository and repository.lower() != own.lower():
        source = state.run.actions_dir / repository.lower() if state.run.actions_dir else None
        if source is None or not source.exists():
            raise StepFailed(
                f"actions/checkout: repository {repository} is not available locally; "
                "clone it under --actions-dir"
            )
    else:
        source = state.run.repo_path
    target = (state.workspace / (inputs.get("path") or "")).resolve()
    if not str(target).startswith(str(state.workspace.resolve())):
        raise StepFailed(f"actions/checkout: path {inputs.get('path')} leaves the workspace")
    ref = inputs.get("ref") or str(state.contexts["github"]["sha"])
    depth = int(inputs.get("fetch-depth") or "1")
    if target.exists() and any(target.iterdir()):
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)

    def git(*args: str, cwd: Path | None = None) -> None:
        outcome = state.run_process(["git", *args], cwd=cwd or target, deadline=deadline)
        if outcome.code != 0:
            raise StepFailed(
                f"actions/checkout: git {' '.join(args[:2])} failed (exit {outcome.code})"
            )

    git("init", "--quiet", str(target), cwd=state.workspace)
    git("remote", "add", "origin", f"file://{source}")
    fetch = ["fetch", "--quiet", "--no-tags", "origin"]
    if depth > 0:
        fetch.append(f"--depth={depth}")
    git(*fetch, ref)
    git("checkout", "--quiet", "--force", "FETCH_HEAD")
    if inputs.get("fetch-tags", "false") == "true" or depth == 0:
        git("fetch", "--quiet", "--tags", "origin")
    sha = subprocess.run(
        ["git", "-C", str(target), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    state.log(f"Checked out {sha} into {target}")
    return {"commit": sha, "ref": ref}


# ---- caches and artifacts --------------------------------------------------------------------


def _expand(state: JobState, path: str) -> str:
    if path.startswith("~"):
        return str(state.home) + path[1:]
    return path


def _archive(state: JobState, paths: list[str], target: Path) -> int:
    """Tar the given workspace- or home-relative paths (globs allowed); return file count."""
    count = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as archive:
        for raw in paths:
            expanded = Path(_expand(state, raw))
            base = expanded if expanded.is_absolute() else state.workspace / expanded
            if base.exists():
                archive.add(base, arcname=_arcname(state, base))
                count += 1
                continue
            for match in globbing.match_files(state.workspace, [raw]):
                archive.add(match, arcname=_arcname(state, match))
                count += 1
    return count


def _arcname(state: JobState, path: Path) -> str:
    for root, prefix in ((state.workspace, "workspace"), (state.home, "home")):
        try:
            return f"{prefix}/{path.resolve().relative_to(root.resolve())}"
        except ValueError:
            continue
    raise StepFailed(f"{path} is outside the workspace and home; it cannot be stored")


def _extract(state: JobState, archive_path: Path) -> None:
    with tarfile.open(archive_path, "r:gz") as archive:
        for member in archive.getmembers():
            prefix, _, rest = member.name.partition("/")
            root = state.workspace if prefix == "workspace" else state.home
            member.name = rest
            archive.extract(member, root, filter="data")


def _cache_dir(state: JobState) -> Path:
    repo = str(state.contexts["github"]["repository"]).replace("/", "_")
    return state.run.data_dir / "ci" / "cache" / repo


def _cache_file(state: JobState, key: str) -> Path:
    return _cache_dir(state) / (hashlib.sha256(key.encode()).hexdigest() + ".tar.gz")


@_builtin("actions/cache")
def _cache(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    """Restore the newest entry for ``key`` (or a ``restore-keys`` prefix); save at job end."""
    key = inputs.get("key", "")
    if not key:
        raise StepFailed("actions/cache: input 'key' is required")
    paths = [line.strip() for line in inputs.get("path", "").splitlines() if line.strip()]
    if not paths:
        raise StepFailed("actions/cache: input 'path' is required")
    directory = _cache_dir(state)
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / "index.json"
    index: dict[str, float] = json.loads(index_path.read_text()) if index_path.exists() else {}
    hit_key = key if key in index else None
    if hit_key is None:
        for prefix in [
            line.strip() for line in inputs.get("restore-keys", "").splitlines() if line.strip()
        ]:
            candidates = sorted((at, name) for name, at in index.items() if name.startswith(prefix))
            if candidates:
                hit_key = candidates[-1][1]
                break
    if hit_key is not None:
        _extract(state, _cache_file(state, hit_key))
        state.log(f"Cache restored from key: {hit_key}")
    else:
        state.log(f"Cache not found for input keys: {key}")

    def save(job: JobState) -> None:
        if job.failed or key in index:
            return
        count = _archive(job, paths, _cache_file(job, key))
        current: dict[str, float] = (
            json.loads(index_path.read_text()) if index_path.exists() else {}
        )
        current[key] = time.time()
        index_path.write_text(json.dumps(current))
        job.log(f"Cache saved with key: {key} ({count} paths)")

    state.post_steps.append(("actions/cache", save))
    return {"cache-hit": "true" if hit_key == key else "false", "cache-matched-key": hit_key or ""}


def _artifact_dir(state: JobState) -> Path:
    return state.run.data_dir / "ci" / "artifacts" / str(state.run.run_id)


@_builtin("actions/upload-artifact")
def _upload_artifact(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    name = inputs.get("name") or "artifact"
    if not re.fullmatch(r"[^/\\:<>|*?\"]+", name):
        raise StepFailed(f"actions/upload-artifact: bad artifact name {name!r}")
    paths = [line.strip() for line in inputs.get("path", "").splitlines() if line.strip()]
    target = _artifact_dir(state) / f"{name}.tar.gz"
    if target.exists() and inputs.get("overwrite", "false") != "true":
        raise StepFailed(
            f"actions/upload-artifact: an artifact named {name!r} already exists in this run"
        )
    count = _archive(state, paths, target)
    if count == 0 and inputs.get("if-no-files-found", "warn") == "error":
        target.unlink()
        raise StepFailed(f"actions/upload-artifact: no files found for {paths}")
    state.log(f"Uploaded artifact {name} ({count} paths)")
    return {"artifact-id": hashlib.sha256(name.encode()).hexdigest()[:12]}


@_builtin("actions/download-artifact")
def _download_artifact(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    name = inputs.get("name")
    directory = _artifact_dir(state)
    archives = [directory / f"{name}.tar.gz"] if name else sorted(directory.glob("*.tar.gz"))
    destination = state.workspace / (inputs.get("path") or "")
    for archive in archives:
        if not archive.exists():
            raise StepFailed(f"actions/download-artifact: no artifact named {name!r} in this run")
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                _prefix, _, rest = member.name.partition("/")
                member.name = rest
                tar.extract(member, destination, filter="data")
    return {"download-path": str(destination)}


# ---- toolchains ------------------------------------------------------------------------------


def _tool_version(binary: str, args: list[str]) -> str:
    result = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip()


def _setup_tool(
    state: JobState,
    *,
    tool: str,
    wanted: str,
    candidates: list[str],
    version_args: list[str],
    pattern: str,
    link_name: str,
) -> dict[str, str]:
    found: list[str] = []
    for candidate in candidates:
        binary = shutil.which(candidate, path=jobs.SYSTEM_PATH)
        if binary is None:
            continue
        match = re.search(pattern, _tool_version(binary, version_args))
        if match is None:
            continue
        version = match.group(1)
        found.append(version)
        if not wanted or version == wanted or version.startswith(wanted.rstrip(".x") + "."):
            directory = state.root / "tools" / tool
            directory.mkdir(parents=True, exist_ok=True)
            link = directory / link_name
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(binary)
            state.path_additions.append(str(directory))
            state.log(f"Using host {tool} {version} ({binary})")
            return {f"{tool}-version": version, "version": version, "path": binary}
    raise StepFailed(
        f"setup-{tool}: no host {tool} matches version {wanted!r} "
        f"(found: {', '.join(found) or 'none'}); install it on this machine"
    )


@_builtin("actions/setup-python")
def _setup_python(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    wanted = inputs.get("python-version", "").strip()
    candidates = [f"python{wanted}"] if re.fullmatch(r"\d+\.\d+", wanted) else []
    candidates += ["python3", "python"]
    return _setup_tool(
        state,
        tool="python",
        wanted=wanted,
        candidates=candidates,
        version_args=["--version"],
        pattern=r"Python (\d+\.\d+\.\d+)",
        link_name="python",
    )


@_builtin("actions/setup-node")
def _setup_node(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    wanted = inputs.get("node-version", "").strip().lstrip("v")
    return _setup_tool(
        state,
        tool="node",
        wanted=wanted,
        candidates=["node", "nodejs"],
        version_args=["--version"],
        pattern=r"v?(\d+\.\d+\.\d+)",
        link_name="node",
    )


@_builtin("actions/setup-java")
def _setup_java(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    wanted = inputs.get("java-version", "").strip()
    return _setup_tool(
        state,
        tool="java",
        wanted=wanted,
        candidates=["java"],
        version_args=["-version"],
        pattern=r"version \"(\d+(?:\.\d+)*)",
        link_name="java",
    )


@_builtin("actions/setup-go")
def _setup_go(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    wanted = inputs.get("go-version", "").strip()
    return _setup_tool(
        state,
        tool="go",
        wanted=wanted,
        candidates=["go"],
        version_args=["version"],
        pattern=r"go(\d+\.\d+(?:\.\d+)?)",
        link_name="go",
    )


# ---- docker actions --------------------------------------------------------------------------


def _docker(
    state: JobState, args: list[str], *, deadline: float, stdin: bytes | None = None
) -> None:
    outcome = state.run_process([str(state.bin / "docker"), *args], deadline=deadline, stdin=stdin)
    if outcome.code != 0:
        raise StepFailed(f"docker {args[0]} failed (exit {outcome.code})")


@_builtin("docker/login-action")
def _docker_login(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    registry = inputs.get("registry") or "docker.io"
    username = inputs.get("username", "")
    password = inputs.get("password", "")
    if password:
        state.run.masker.add(password)
    _docker(
        state,
        ["login", registry, "-u", username, "--password-stdin"],
        deadline=deadline,
        stdin=password.encode(),
    )
    return {}


@_builtin("docker/setup-buildx-action", "docker/setup-qemu-action")
def _docker_setup(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    state.log("buildah builds images here; nothing to set up")
    return {"name": "buildah", "platforms": "linux/amd64,linux/arm64"}


def _list_input(value: str) -> list[str]:
    return [item.strip() for line in value.splitlines() for item in line.split(",") if item.strip()]


@_builtin("docker/build-push-action")
def _docker_build_push(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    context = inputs.get("context") or "."
    args = ["build"]
    if inputs.get("file"):
        args += ["-f", inputs["file"]]
    tags = _list_input(inputs.get("tags", ""))
    for tag in tags:
        args += ["-t", tag]
    for line in inputs.get("build-args", "").splitlines():
        if line.strip():
            args += ["--build-arg", line.strip()]
    if inputs.get("target"):
        args += ["--target", inputs["target"]]
    if inputs.get("platforms"):
        args += ["--platform", _list_input(inputs["platforms"])[0]]
    for line in inputs.get("secret-files", "").splitlines():
        if "=" in line:
            name, _, path = line.partition("=")
            args += ["--secret", f"id={name.strip()},src={path.strip().strip(chr(34))}"]
    iidfile = state.temp / f"iid-{state.current_step}"
    args += ["--iidfile", str(iidfile), context]
    _docker(state, args, deadline=deadline)
    if inputs.get("push", "false") == "true":
        for tag in tags:
            _docker(state, ["push", tag], deadline=deadline)
    image_id = iidfile.read_text().strip() if iidfile.exists() else ""
    return {
        "imageid": image_id,
        "digest": image_id,
        "metadata": json.dumps({"image.name": ",".join(tags)}),
    }


@_builtin("docker/metadata-action")
def _docker_metadata(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    """Tags from ``images`` times ``tags`` rules (type=raw, sha, ref, semver subset)."""
    github = state.contexts["github"]
    images = _list_input(inputs.get("images", ""))
    rules = [line.strip() for line in inputs.get("tags", "").splitlines() if line.strip()]
    if not rules:
        rules = [
            "type=schedule",
            "type=ref,event=branch",
            "type=ref,event=tag",
            "type=ref,event=pr",
        ]
    ref = str(github["ref"])
    versions: list[str] = []
    for rule in rules:
        spec = dict(part.split("=", 1) for part in rule.split(",") if "=" in part)
        kind = spec.get("type", "raw")
        if spec.get("enable", "true") == "false":
            continue
        value: str | None = None
        if kind == "raw":
            value = spec.get("value")
        elif kind == "sha":
            value = spec.get("prefix", "sha-") + str(github["sha"])[:7]
        elif kind == "ref":
            event = spec.get("event")
            if event == "branch" and ref.startswith("refs/heads/"):
                value = re.sub(r"[^a-zA-Z0-9._-]", "-", ref.removeprefix("refs/heads/"))
            elif event == "tag" and ref.startswith("refs/tags/"):
                value = ref.removeprefix("refs/tags/")
            elif event == "pr" and github.get("event_name") == "pull_request":
                value = f"pr-{github.get('event', {}).get('number', '0')}"
        elif kind == "semver" and ref.startswith("refs/tags/"):
            match = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(.*)", ref.removeprefix("refs/tags/"))
            if match:
                major, minor, patch, rest = match.groups()
                pattern = spec.get("pattern", "{{version}}")
                value = (
                    pattern.replace("{{version}}", f"{major}.{minor}.{patch}{rest}")
                    .replace("{{major}}", major)
                    .replace("{{minor}}", minor)
                    .replace("{{patch}}", patch)
                )
        elif kind == "schedule" and github.get("event_name") == "schedule":
            value = "nightly"
        if value:
            versions.append(value)
    tags = [f"{image}:{version}" for image in images for version in versions] or versions
    labels = [
        f"org.opencontainers.image.revision={github['sha']}",
        f"org.opencontainers.image.source={github.get('server_url', '')}/{github['repository']}",
    ]
    return {
        "version": versions[0] if versions else "",
        "tags": "\n".join(tags),
        "labels": "\n".join(labels),
        "json": json.dumps({"tags": tags, "labels": dict(label.split("=", 1) for label in labels)}),
    }


# ---- syrup/update-image ----------------------------------------------------------------------


def update_image_tag(*, directory: Path, image: str, tag: str) -> list[Path]:
    """Bump ``image``'s tag in the YAML files under ``directory`` with the updater's code.

    The image updater (``syrup.updater``) is looked up at run time so that the CI runner does
    not depend on it. Preferred entry point, when the updater offers it:
    ``syrup.updater.set_image_tag(directory: Path, *, image: str, tag: str) -> list[Path]``
    (the files it changed). Until then the updater's surgical editor
    (``syrup.updater.edits.edit`` with ``syrup.updater.refs.parse_repository``) is applied
    to each ``*.yaml``/``*.yml`` file, which changes only the tag's characters.
    """
    try:
        updater = importlib.import_module("syrup.updater")
    except ImportError as error:
        raise StepFailed("syrup/update-image: the image updater is not installed") from error
    setter = getattr(updater, "set_image_tag", None)
    if setter is not None:
        return [Path(path) for path in setter(directory, image=image, tag=tag)]
    try:
        edits = importlib.import_module("syrup.updater.edits")
        refs = importlib.import_module("syrup.updater.refs")
    except ImportError as error:
        raise StepFailed(
            "syrup/update-image: syrup.updater has neither set_image_tag(directory, *, image, "
            "tag) nor its edits module; this Syrup build cannot edit GitOps files from CI"
        ) from error
    target = edits.Target(repository=refs.parse_repository(image, where="image"), tag=tag)
    rules = edits.Rules()
    changed: list[Path] = []
    for path in sorted([*directory.rglob("*.yaml"), *directory.rglob("*.yml")]):
        if ".git" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        result = edits.edit(text, path=str(path), target=target, rules=rules)
        if result.changed:
            path.write_text(result.text, encoding="utf-8")
            changed.append(path)
    return changed


@_builtin("syrup/update-image")
def _syrup_update_image(state: JobState, inputs: dict[str, str], deadline: float) -> dict[str, str]:
    image, tag, path = inputs.get("image", ""), inputs.get("tag", ""), inputs.get("path", "")
    if not image or not tag or not path:
        raise StepFailed("syrup/update-image: inputs image, tag and path are required")
    directory = Path(path) if os.path.isabs(path) else state.workspace / path
    if not directory.is_dir():
        raise StepFailed(f"syrup/update-image: {directory} is not a directory")
    changed = update_image_tag(directory=directory, image=image, tag=tag)
    for changed_path in changed:
        state.log(f"updated {changed_path}")
    return {"changed": "true" if changed else "false", "files": "\n".join(str(p) for p in changed)}
