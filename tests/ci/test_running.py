"""Running workflows end to end on this machine, one feature per test, results asserted.

Every test writes a real-world-shaped workflow into a fresh git repository and runs it with
the real runner: real shells, real git, real process groups, a real SQLite run database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syrup.ci import records
from syrup.ci.records import Conclusion
from syrup.cli import main
from tests.ci.conftest import RunFn, make_repo

SYRUP = str(Path(sys.executable).parent / "syrup")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its reaper counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wf(body: str) -> dict[str, str]:
    return {".github/workflows/ci.yml": body}


def test_outputs_pass_between_steps_and_jobs(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            name: build
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                outputs:
                  image: ${{ steps.meta.outputs.image }}
                  legacy: ${{ steps.old.outputs.value }}
                steps:
                  - id: meta
                    run: |
                      echo "image=registry.local/app:${{ github.run_number }}" >> "$GITHUB_OUTPUT"
                      {
                        echo "notes<<EOF"
                        echo "line one"
                        echo "line two"
                        echo "EOF"
                      } >> "$GITHUB_OUTPUT"
                  - run: echo "multi=[${{ steps.meta.outputs.notes }}]"
                  - id: old
                    run: echo "::set-output name=value::legacy-ok"
              deploy:
                needs: build
                runs-on: ubuntu-latest
                steps:
                  - run: >-
                      echo "deploying ${{ needs.build.outputs.image }}"
                      "${{ needs.build.outputs.legacy }}"
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS
    assert outcome.result.run_number == 1
    assert outcome.result.jobs["build"].outputs == {
        "image": "registry.local/app:1",
        "legacy": "legacy-ok",
    }
    assert "multi=[line one" in outcome.log("build")
    assert "set-output` command is deprecated" in outcome.log("build")
    assert "deploying registry.local/app:1 legacy-ok" in outcome.log("deploy")
    steps = outcome.store.steps(outcome.job("build").id)
    assert steps[0].outputs["image"] == "registry.local/app:1"


def test_run_number_increments_per_workflow_across_restarts(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              tag:
                runs-on: ubuntu-latest
                steps:
                  - run: echo "tag ${{ github.run_number }}"
        """),
    )
    data = tmp_path / "data"
    first = ci_run(repo, data_dir=data)
    second = ci_run(repo, data_dir=data)  # a new runner: a new process's view of the store
    assert (first.result.run_number, second.result.run_number) == (1, 2)
    assert "tag 2" in second.log("tag")


def test_env_github_path_and_step_summary_files_apply(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            env:
              LEVEL: workflow
              SHARED: from-workflow
            jobs:
              files:
                runs-on: ubuntu-latest
                env:
                  SHARED: from-job
                steps:
                  - run: |
                      echo "ADDED=hello" >> "$GITHUB_ENV"
                      mkdir -p "$RUNNER_TEMP/tools"
                      printf '#!/bin/sh\\necho tool-ran\\n' > "$RUNNER_TEMP/tools/mytool"
                      chmod +x "$RUNNER_TEMP/tools/mytool"
                      echo "$RUNNER_TEMP/tools" >> "$GITHUB_PATH"
                      echo "## Build report" >> "$GITHUB_STEP_SUMMARY"
                  - env:
                      SHARED: from-step
                    run: |
                      echo "added=$ADDED level=$LEVEL shared=$SHARED ctx=${{ env.ADDED }}"
                      mytool
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS
    log = outcome.log("files")
    assert "added=hello level=workflow shared=from-step ctx=hello" in log
    assert "tool-ran" in log
    assert outcome.job("files").summary.strip() == "## Build report"


def test_steps_get_a_clean_environment(
    tmp_path: Path, ci_run: RunFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYRUP_LEAK_CHECK", "must-not-leak")
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              env:
                runs-on: ubuntu-latest
                steps:
                  - run: env | sort
        """),
    )
    outcome = ci_run(repo)
    log = outcome.log("env")
    assert "SYRUP_LEAK_CHECK" not in log
    assert "VIRTUAL_ENV" not in log
    assert "CI=true" in log
    assert "GITHUB_ACTIONS=true" in log
    assert f"HOME={tmp_path}" in log  # the job's own home under the data dir


@pytest.mark.parametrize(
    ("shell", "script", "expected"),
    [
        ("bash", "[ -o pipefail ] && echo pipefail-on", "pipefail-on"),
        ("sh", "echo $0", "step-1.sh"),
        ("python", "import sys; print(sys.version_info[0] * 11)", "33"),
        ("bash {0} extra-arg", 'echo "arg=$1"', "arg=extra-arg"),
    ],
)
def test_shells_run_as_github_defines_them(
    tmp_path: Path, ci_run: RunFn, shell: str, script: str, expected: str
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf(f"""
            on: push
            jobs:
              shell:
                runs-on: ubuntu-latest
                steps:
                  - shell: {shell}
                    run: '{script}'
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("shell")
    assert expected in outcome.log("shell")


def test_default_shell_stops_at_the_first_failing_command(tmp_path: Path, ci_run: RunFn) -> None:
    repo = (
        make_repo(
            tmp_path / "r",
            wf("""
            on: push
            defaults:
              run:
                working-directory: sub
            jobs:
              fail:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@v4
                  - run: |
                      pwd
                      false
                      echo not-reached
        """),
        )
        if False
        else make_repo(
            tmp_path / "r",
            {
                **wf("""
                on: push
                defaults:
                  run:
                    working-directory: sub
                jobs:
                  fail:
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/checkout@v4
                      - run: |
                          pwd
                          false
                          echo not-reached
            """),
                "sub/keep": "x",
            },
        )
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    log = outcome.log("fail")
    assert "/workspace/sub" in log
    assert "not-reached" not in log
    assert "Process completed with exit code 1." in log


def test_matrix_include_exclude_fail_fast_and_max_parallel(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              test:
                runs-on: ubuntu-latest
                name: test ${{ matrix.os }}-${{ matrix.py }}
                strategy:
                  fail-fast: false
                  max-parallel: 1
                  matrix:
                    os: [linux, mac]
                    py: ["3.10", "3.11"]
                    exclude:
                      - os: mac
                        py: "3.10"
                    include:
                      - os: linux
                        experimental: true
                      - os: bsd
                        py: "3.12"
                steps:
                  - run: |
                      echo "combo ${{ matrix.os }} ${{ matrix.py }}" \
                        "exp=${{ matrix.experimental }}" \
                        "${{ strategy.job-index }}/${{ strategy.job-total }}"
                      date +%s%N > "$RUNNER_TEMP/../../start-${{ strategy.job-index }}"
                      sleep 0.2
                      date +%s%N > "$RUNNER_TEMP/../../end-${{ strategy.job-index }}"
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS
    names = sorted(job.name for job in outcome.store.jobs(outcome.result.run_id))
    assert names == ["test bsd-3.12", "test linux-3.10", "test linux-3.11", "test mac-3.11"]
    text = outcome.all_logs()
    assert "combo linux 3.10 exp=true" in text
    assert "combo linux 3.11 exp=true" in text
    assert "combo mac 3.11 exp= " in text
    assert "combo bsd 3.12 exp= 3/4" in text
    # max-parallel: 1 means the instances never overlapped.
    work = tmp_path / "data" / "ci" / "work" / str(outcome.result.run_id)
    spans = sorted(
        (int((work / f"start-{i}").read_text()), int((work / f"end-{i}").read_text()))
        for i in range(4)
    )
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(3))


def test_fail_fast_cancels_the_other_matrix_instances(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              test:
                runs-on: ubuntu-latest
                strategy:
                  matrix:
                    n: [fails, slow]
                steps:
                  - run: |
                      if [ "${{ matrix.n }}" = fails ]; then exit 3; fi
                      sleep 30
        """),
    )
    started = time.monotonic()
    outcome = ci_run(repo)
    assert time.monotonic() - started < 20
    assert outcome.result.conclusion is Conclusion.FAILURE
    by_key = {job.key: job.conclusion for job in outcome.store.jobs(outcome.result.run_id)}
    assert by_key == {"test (fails)": Conclusion.FAILURE, "test (slow)": Conclusion.CANCELLED}


def test_a_failed_need_skips_dependents_unless_their_if_says_otherwise(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              test:
                runs-on: ubuntu-latest
                steps:
                  - run: exit 1
              build:
                needs: test
                runs-on: ubuntu-latest
                steps:
                  - run: echo building
              after-build:
                needs: build
                runs-on: ubuntu-latest
                steps:
                  - run: echo never
              report:
                needs: [test, build]
                if: always()
                runs-on: ubuntu-latest
                steps:
                  - run: echo "test=${{ needs.test.result }} build=${{ needs.build.result }}"
              on-failure:
                needs: test
                if: failure()
                runs-on: ubuntu-latest
                steps:
                  - run: echo cleaning up
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    by_key = {job.key: job.conclusion for job in outcome.store.jobs(outcome.result.run_id)}
    assert by_key == {
        "test": Conclusion.FAILURE,
        "build": Conclusion.SKIPPED,
        "after-build": Conclusion.SKIPPED,
        "report": Conclusion.SUCCESS,
        "on-failure": Conclusion.SUCCESS,
    }
    assert "test=failure build=skipped" in outcome.log("report")
    assert "cleaning up" in outcome.log("on-failure")


def test_step_if_continue_on_error_and_outcome_versus_conclusion(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              steps:
                runs-on: ubuntu-latest
                steps:
                  - id: flaky
                    continue-on-error: true
                    run: exit 1
                  - run: >-
                      echo "outcome=${{ steps.flaky.outcome }}"
                      "conclusion=${{ steps.flaky.conclusion }}"
                  - if: github.event_name == 'pull_request'
                    run: echo never
                  - id: broken
                    run: exit 2
                  - run: echo skipped-after-failure
                  - if: failure() && steps.broken.outcome == 'failure'
                    run: echo handled-failure
                  - if: always()
                    run: echo always-runs
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    log = outcome.log("steps")
    assert "outcome=failure conclusion=success" in log
    assert "never" not in log
    assert "skipped-after-failure" not in log
    assert "handled-failure" in log
    assert "always-runs" in log
    conclusions = [s.conclusion for s in outcome.store.steps(outcome.job("steps").id)]
    assert conclusions == [
        Conclusion.SUCCESS,
        Conclusion.SUCCESS,
        Conclusion.SKIPPED,
        Conclusion.FAILURE,
        Conclusion.SKIPPED,
        Conclusion.SUCCESS,
        Conclusion.SUCCESS,
    ]


def test_job_continue_on_error_keeps_the_run_green(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              experimental:
                runs-on: ubuntu-latest
                continue-on-error: true
                steps:
                  - run: exit 1
              next:
                needs: experimental
                runs-on: ubuntu-latest
                steps:
                  - run: echo next-ran
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS
    assert outcome.job("experimental").conclusion is Conclusion.FAILURE
    assert "next-ran" in outcome.log("next")


def test_a_step_that_exceeds_its_timeout_is_killed_with_its_children(
    tmp_path: Path, ci_run: RunFn
) -> None:
    marker = tmp_path / "child-survived"
    repo = make_repo(
        tmp_path / "r",
        wf(f"""
            on: push
            jobs:
              slow:
                runs-on: ubuntu-latest
                steps:
                  - timeout-minutes: 0.03
                    run: |
                      (sleep 4; touch {marker}) &
                      echo started
                      sleep 60
                  - run: echo not-reached
                  - if: always()
                    run: echo cleanup-ran
        """),
    )
    started = time.monotonic()
    outcome = ci_run(repo)
    elapsed = time.monotonic() - started
    assert elapsed < 15
    assert outcome.result.conclusion is Conclusion.FAILURE
    log = outcome.log("slow")
    assert "exceeded its timeout" in log
    assert "not-reached" not in log
    assert "cleanup-ran" in log
    time.sleep(4.5)
    assert not marker.exists(), "the background child outlived the step's timeout"


def test_a_job_timeout_fails_the_job(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              slow:
                runs-on: ubuntu-latest
                timeout-minutes: 0.03
                steps:
                  - run: sleep 60
        """),
    )
    started = time.monotonic()
    outcome = ci_run(repo)
    assert time.monotonic() - started < 15
    assert outcome.result.conclusion is Conclusion.FAILURE


def test_background_processes_are_killed_when_the_job_ends(tmp_path: Path, ci_run: RunFn) -> None:
    pid_file = tmp_path / "server.pid"
    repo = make_repo(
        tmp_path / "r",
        wf(f"""
            on: push
            jobs:
              serve:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      sleep 300 &
                      echo $! > {pid_file}
                  - run: kill -0 "$(cat {pid_file})" && echo still-alive-between-steps
        """),
    )
    outcome = ci_run(repo)
    assert "still-alive-between-steps" in outcome.log("serve")
    assert not alive(int(pid_file.read_text()))


def test_secrets_are_masked_everywhere_and_never_stored(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              deploy:
                runs-on: ubuntu-latest
                outputs:
                  leaked: ${{ steps.s.outputs.token }}
                steps:
                  - id: s
                    env:
                      TOKEN: ${{ secrets.DEPLOY_TOKEN }}
                      MISSING: ${{ secrets.NOT_SET }}
                    run: |
                      echo "token is $TOKEN"
                      echo "missing is [$MISSING]"
                      echo "token=$TOKEN" >> "$GITHUB_OUTPUT"
                      echo "::add-mask::dynamic-value-123"
                      echo "dynamic is dynamic-value-123"
                      echo "::warning file=app.py,line=3::careful with s3cr3t-deploy-token"
        """),
    )
    outcome = ci_run(repo, secrets={"DEPLOY_TOKEN": "s3cr3t-deploy-token", "UNUSED": "other-value"})
    log = outcome.log("deploy")
    assert "token is ***" in log
    assert "missing is []" in log
    assert "dynamic is ***" in log
    assert "##[warning]app.py:3: careful with ***" in log
    assert "Skip output 'leaked' since it may contain secret" in log
    database = (tmp_path / "data" / "ci" / "ci.db").read_bytes()
    for name in ("ci.db-wal",):
        wal = tmp_path / "data" / "ci" / name
        if wal.exists():
            database += wal.read_bytes()
    assert b"s3cr3t-deploy-token" not in database
    assert b"dynamic-value-123" not in database
    assert b"other-value" not in database


def test_secrets_given_to_a_run_are_only_those_the_workflow_names(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              show:
                runs-on: ubuntu-latest
                steps:
                  - run: echo '${{ toJSON(secrets) }}' | tr -d ' \\n'; echo
        """),
    )
    outcome = ci_run(repo, secrets={"A": "1", "B": "2"})
    assert '"GITHUB_TOKEN":"***"' in outcome.log("show")
    assert '"A"' not in outcome.log("show")


def test_concurrency_cancel_in_progress_cancels_the_older_run(
    tmp_path: Path, ci_run: RunFn
) -> None:
    import threading

    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            concurrency:
              group: deploy-${{ github.ref }}
              cancel-in-progress: true
            jobs:
              deploy:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      echo started
                      [ -f "${{ github.workspace }}/../../../../fast" ] && exit 0
                      sleep 60
        """),
    )
    data = tmp_path / "data"
    results = {}

    def first() -> None:
        results["first"] = ci_run(repo, data_dir=data)

    thread = threading.Thread(target=first)
    thread.start()
    store = records.open_store(data)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runs = store.runs()
        if runs and runs[0].status is records.Status.IN_PROGRESS and store.logs(runs[0].id):
            break
        time.sleep(0.1)
    (data / "ci" / "fast").write_text("")
    started = time.monotonic()
    second = ci_run(repo, data_dir=data)
    thread.join(timeout=30)
    assert time.monotonic() - started < 20
    assert results["first"].result.conclusion is Conclusion.CANCELLED
    assert second.result.conclusion is Conclusion.SUCCESS
    store.close()


def test_cancelling_a_run_from_another_process_kills_its_steps(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              long:
                runs-on: ubuntu-latest
                steps:
                  - run: echo started; sleep 60
        """),
    )
    data = tmp_path / "data"
    process = subprocess.Popen(
        [SYRUP, "ci", "run", str(repo), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    store = records.open_store(data)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (store.runs() and store.logs(store.runs()[0].id)):
            time.sleep(0.1)
        run_id = store.runs()[0].id
        cli = CliRunner()
        cancel = cli.invoke(main.app, ["ci", "cancel", str(run_id), "--data-dir", str(data)])
        assert "cancellation requested" in cancel.stdout
        # `logs --follow` streams until the run completes.
        followed = cli.invoke(main.app, ["ci", "logs", str(run_id), "-f", "--data-dir", str(data)])
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    assert f"run {run_id} (#1)" in output and "cancelled" in output
    assert "[long] started" in followed.stdout
    assert followed.stdout.rstrip().endswith(f"run {run_id}: completed cancelled")
    assert store.run(run_id).conclusion is Conclusion.CANCELLED
    listing = cli.invoke(main.app, ["ci", "runs", "--data-dir", str(data)])
    assert "ci.yml" in listing.stdout and "cancelled" in listing.stdout
    store.close()


def test_a_restart_marks_in_flight_runs_failed_and_keeps_finished_ones(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              long:
                runs-on: ubuntu-latest
                steps:
                  - run: echo started; sleep 60
        """),
    )
    data = tmp_path / "data"
    done = ci_run(
        make_repo(
            tmp_path / "quick",
            wf("""
        on: push
        jobs:
          quick:
            runs-on: ubuntu-latest
            steps:
              - run: echo quick
    """),
        ),
        data_dir=data,
    )
    process = subprocess.Popen(
        [SYRUP, "ci", "run", str(repo), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    store = records.Store(data / "ci" / "ci.db")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(store.runs()) < 2:
        time.sleep(0.1)
    while time.monotonic() < deadline and not store.logs(store.runs()[0].id):
        time.sleep(0.1)
    os.killpg(process.pid, 9)  # the runner dies without finishing its records
    process.wait()
    store.close()

    reopened = records.open_store(data)
    crashed, finished = reopened.runs()
    assert crashed.status is records.Status.COMPLETED
    assert crashed.conclusion is Conclusion.FAILURE
    assert crashed.reason == "the runner stopped while this run was in flight"
    assert finished.id == done.result.run_id
    assert finished.conclusion is Conclusion.SUCCESS
    assert reopened.logs(finished.id)
    reopened.close()


def test_runs_on_a_label_this_host_cannot_satisfy_fails_clearly(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              win:
                runs-on: windows-latest
                steps:
                  - run: echo never
              svc:
                runs-on: ubuntu-latest
                services:
                  db:
                    image: mysql:5.7
                steps:
                  - run: echo never
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    assert "runs-on windows-latest cannot run on this host" in outcome.log("win")
    assert "'services', which is not supported here" in outcome.log("svc")
    assert "never" not in outcome.all_logs()


def test_an_unknown_action_fails_naming_it_and_how_to_provide_it(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              notify:
                runs-on: ubuntu-latest
                steps:
                  - uses: rtCamp/action-slack-notify@v2.3.3
        """),
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.FAILURE
    log = outcome.log("notify")
    assert "action 'rtCamp/action-slack-notify@v2.3.3' is not built in" in log
    assert "--actions-dir" in log


def test_remote_actions_come_from_the_local_actions_directory(
    tmp_path: Path, ci_run: RunFn
) -> None:
    actions_dir = tmp_path / "actions"
    make_repo(
        actions_dir / "acme" / "greet",
        {
            "action.yml": """
                name: greet
                inputs:
                  who: {default: world}
                outputs:
                  said: {value: "${{ steps.say.outputs.said }}"}
                runs:
                  using: composite
                  steps:
                    - id: say
                      shell: bash
                      run: |
                        echo "hello ${{ inputs.who }}"
                        echo "said=hello ${{ inputs.who }}" >> "$GITHUB_OUTPUT"
            """,
        },
    )
    subprocess.run(["git", "-C", str(actions_dir / "acme" / "greet"), "tag", "v1"], check=True)
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              greet:
                runs-on: ubuntu-latest
                steps:
                  - id: g
                    uses: acme/greet@v1
                    with:
                      who: syrup
                  - run: echo "output ${{ steps.g.outputs.said }}"
        """),
    )
    outcome = ci_run(repo, actions_dir=actions_dir)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("greet")
    assert "hello syrup" in outcome.log("greet")
    assert "output hello syrup" in outcome.log("greet")


def test_local_composite_and_node_actions_run(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            **wf("""
                on: push
                jobs:
                  local:
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/checkout@v4
                      - id: comp
                        uses: ./.github/actions/version
                        with:
                          prefix: v
                      - id: node
                        uses: ./.github/actions/js
                        with:
                          name: Ada
                      - run: >-
                          echo "${{ steps.comp.outputs.version }}"
                          "${{ steps.node.outputs.greeting }}"
            """),
            ".github/actions/version/action.yml": """
                name: version
                inputs:
                  prefix: {required: true}
                outputs:
                  version: {value: "${{ steps.v.outputs.version }}"}
                runs:
                  using: composite
                  steps:
                    - id: v
                      shell: bash
                      run: echo "version=${{ inputs.prefix }}1.2.3" >> "$GITHUB_OUTPUT"
            """,
            ".github/actions/js/action.yml": """
                name: js
                inputs:
                  name: {required: true}
                runs:
                  using: node20
                  main: index.js
            """,
            ".github/actions/js/index.js": """
                const fs = require('fs');
                const name = process.env['INPUT_NAME'];
                console.log(`node says hi to ${name}`);
                fs.appendFileSync(process.env['GITHUB_OUTPUT'], `greeting=hi ${name}\\n`);
            """,
        },
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("local")
    assert "node says hi to Ada" in outcome.log("local")
    assert "v1.2.3 hi Ada" in outcome.log("local")


def test_reusable_workflows_get_inputs_secrets_and_return_outputs(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/_build.yml": """
                on:
                  workflow_call:
                    inputs:
                      image: {type: string, required: true}
                      push: {type: boolean, default: false}
                    secrets:
                      REGISTRY_PASSWORD: {required: true}
                    outputs:
                      ref:
                        value: ${{ jobs.build.outputs.ref }}
                jobs:
                  build:
                    runs-on: ubuntu-latest
                    outputs:
                      ref: ${{ steps.b.outputs.ref }}
                    steps:
                      - id: b
                        run: |
                          echo "building ${{ inputs.image }} push=${{ inputs.push }}" \
                            "pw=${{ secrets.REGISTRY_PASSWORD }} other=[${{ secrets.OTHER }}]"
                          ref="${{ inputs.image }}:${{ github.run_number }}"
                          echo "ref=$ref" >> "$GITHUB_OUTPUT"
            """,
            ".github/workflows/deploy.yml": """
                on: push
                jobs:
                  call:
                    uses: ./.github/workflows/_build.yml
                    with:
                      image: app
                      push: true
                    secrets:
                      REGISTRY_PASSWORD: ${{ secrets.PW }}
                  inherit:
                    uses: ./.github/workflows/_build.yml
                    with:
                      image: other
                    secrets: inherit
                  use:
                    needs: call
                    runs-on: ubuntu-latest
                    steps:
                      - run: echo "got ${{ needs.call.outputs.ref }}"
            """,
        },
    )
    outcome = ci_run(
        repo, secrets={"PW": "pw-value", "OTHER": "other-value", "REGISTRY_PASSWORD": "rp"}
    )
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.all_logs()
    assert "building app push=true pw=*** other=[]" in outcome.log("call/build")
    assert "building other push=false pw=*** other=[***]" in outcome.log("inherit/build")
    assert "got app:1" in outcome.log("use")
    assert outcome.result.jobs["call"].outputs == {"ref": "app:1"}


def test_workflow_dispatch_inputs_are_typed(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on:
              workflow_dispatch:
                inputs:
                  target: {type: choice, options: [dev, prod], required: true}
                  dry: {type: boolean, default: true}
            jobs:
              go:
                runs-on: ubuntu-latest
                steps:
                  - if: inputs.dry
                    run: echo "dry run to ${{ inputs.target }} (${{ github.event.inputs.target }})"
        """),
    )
    outcome = ci_run(repo, event="workflow_dispatch", inputs={"target": "prod"})
    assert "dry run to prod (prod)" in outcome.log("go")


def test_checkout_fetch_depth_ref_and_path(tmp_path: Path, ci_run: RunFn) -> None:
    from tests.ci.conftest import commit, git

    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              co:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@v4
                  - run: git rev-list --count HEAD; cat version
                  - uses: actions/checkout@v4
                    with:
                      fetch-depth: 0
                      path: full
                  - run: git -C full rev-list --count HEAD
                  - uses: actions/checkout@v4
                    with:
                      ref: v1
                      path: old
                  - run: cat old/version
        """),
    )
    commit(repo, {"version": "1"})
    git(repo, "tag", "v1")
    commit(repo, {"version": "2"})
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("co")
    lines = [line for line in outcome.lines["co"] if not line.startswith(("##[", "Checked out"))]
    assert lines == ["1", "2", "3", "1"]


def test_cache_restores_by_key_and_prefix_and_artifacts_pass_between_jobs(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            **wf("""
                on: push
                jobs:
                  build:
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/checkout@v4
                      - id: cache
                        uses: actions/cache@v4
                        with:
                          path: ~/.deps
                          key: deps-${{ hashFiles('**/deps.lock') }}
                          restore-keys: |
                            deps-
                      - run: |
                          echo "hit=${{ steps.cache.outputs.cache-hit }}"
                          ls ~/.deps 2>/dev/null || echo no-deps
                          mkdir -p ~/.deps dist
                          cp deps.lock ~/.deps/installed
                          echo built > dist/app.txt
                      - uses: actions/upload-artifact@v4
                        with:
                          name: app
                          path: dist/
                  use:
                    needs: build
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/download-artifact@v4
                        with:
                          name: app
                      - run: cat dist/app.txt
            """),
            "deps.lock": "a==1\n",
        },
    )
    data = tmp_path / "data"
    first = ci_run(repo, data_dir=data)
    assert first.result.conclusion is Conclusion.SUCCESS, first.all_logs()
    assert "hit=false" in first.log("build")
    assert "no-deps" in first.log("build")
    assert "built" in first.log("use")

    second = ci_run(repo, data_dir=data)
    assert "hit=true" in second.log("build")
    assert "installed" in second.log("build")

    from tests.ci.conftest import commit

    commit(repo, {"deps.lock": "a==2\n"})
    third = ci_run(repo, data_dir=data)
    assert "hit=false" in third.log("build")
    assert "installed" in third.log("build")  # restored through the restore-keys prefix


def test_setup_python_uses_the_host_toolchain_or_fails_clearly(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              ok:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/setup-python@v5
                    with:
                      python-version: "3"
                  - run: python --version
              missing:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/setup-java@v4
                    with:
                      java-version: "99"
                      distribution: temurin
        """),
    )
    outcome = ci_run(repo)
    assert "Python 3." in outcome.log("ok")
    assert outcome.job("ok").conclusion is Conclusion.SUCCESS
    assert outcome.job("missing").conclusion is Conclusion.FAILURE
    assert "setup-java: no host java matches version '99'" in outcome.log("missing")


def test_workflow_commands_groups_debug_and_stop_commands(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              cmds:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      echo "::group::Install"
                      echo inside
                      echo "::endgroup::"
                      echo "::debug::hidden detail"
                      echo "::error file=src/app.py,line=10::boom%0Anext line"
                      echo "::notice::fyi"
                      echo "::stop-commands::pause1"
                      echo "::add-mask::not-a-mask"
                      echo "::pause1::"
                      echo "shown not-a-mask"
        """),
    )
    outcome = ci_run(repo)
    log = outcome.lines["cmds"]
    assert "##[group]Install" in log
    assert "inside" in log
    assert not any("hidden detail" in line for line in log)
    assert "##[error]src/app.py:10: boom\nnext line" in log
    assert "::add-mask::not-a-mask" in log
    assert "shown not-a-mask" in log
    step = outcome.store.steps(outcome.job("cmds").id)[0]
    assert {
        "level": "error",
        "message": "boom\nnext line",
        "file": "src/app.py",
        "line": "10",
    } in step.annotations


def test_run_selects_workflows_by_trigger_and_job_filter(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/main-only.yml": """
                on:
                  push:
                    branches: [main]
                jobs:
                  a:
                    runs-on: ubuntu-latest
                    steps: [{run: echo a}]
                  b:
                    needs: a
                    runs-on: ubuntu-latest
                    steps: [{run: echo b}]
                  c:
                    runs-on: ubuntu-latest
                    steps: [{run: echo c}]
            """,
            ".github/workflows/tags.yml": """
                on:
                  push:
                    tags: ['v*']
                jobs:
                  t:
                    runs-on: ubuntu-latest
                    steps: [{run: echo t}]
            """,
        },
    )
    outcome = ci_run(repo, job="b")
    assert [r.workflow for r in outcome.results] == ["main-only.yml"]
    assert sorted(outcome.lines) == ["a", "b"]


def test_job_level_concurrency_serialises_jobs_of_one_group(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              one:
                runs-on: ubuntu-latest
                concurrency: shared-env
                steps:
                  - run: |
                      date +%s%N > "$RUNNER_TEMP/../../one-start"; sleep 0.5
                      date +%s%N > "$RUNNER_TEMP/../../one-end"
              two:
                runs-on: ubuntu-latest
                concurrency: shared-env
                steps:
                  - run: |
                      date +%s%N > "$RUNNER_TEMP/../../two-start"; sleep 0.5
                      date +%s%N > "$RUNNER_TEMP/../../two-end"
        """),
    )
    outcome = ci_run(repo, max_parallel=4)
    assert outcome.result.conclusion is Conclusion.SUCCESS
    work = tmp_path / "data" / "ci" / "work" / str(outcome.result.run_id)
    spans = sorted(
        (int((work / f"{job}-start").read_text()), int((work / f"{job}-end").read_text()))
        for job in ("one", "two")
    )
    assert spans[0][1] <= spans[1][0], "jobs of one concurrency group overlapped"


def test_pull_request_and_schedule_events_run_their_workflows(
    tmp_path: Path, ci_run: RunFn
) -> None:
    from tests.ci.conftest import commit, git

    repo = make_repo(
        tmp_path / "r",
        {
            ".github/workflows/pr.yml": """
                on:
                  pull_request:
                    branches: [develop]
                    paths: ['src/**']
                jobs:
                  check:
                    runs-on: ubuntu-latest
                    steps:
                      - run: >-
                          echo "pr ${{ github.event_name }} ${{ github.base_ref }}
                          <- ${{ github.head_ref }}"
            """,
            ".github/workflows/nightly.yml": """
                on:
                  schedule:
                    - cron: '0 3 * * *'
                jobs:
                  nightly:
                    runs-on: ubuntu-latest
                    steps:
                      - run: echo "nightly ${{ github.event.schedule != '' }}"
            """,
        },
    )
    git(repo, "branch", "develop")
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"src/app.py": "print('hi')\n"})

    pr = ci_run(repo, event="pull_request", base="develop")
    assert [r.workflow for r in pr.results] == ["pr.yml"]
    assert "pr pull_request develop <- feature" in pr.log("check")

    nightly = ci_run(repo, event="schedule")
    assert [r.workflow for r in nightly.results] == ["nightly.yml"]
    assert "nightly true" in nightly.log("nightly")


def test_a_matrix_computed_from_needs_outputs_expands_when_the_job_starts(
    tmp_path: Path, ci_run: RunFn
) -> None:
    repo = make_repo(
        tmp_path / "r",
        wf("""
            on: push
            jobs:
              discover:
                runs-on: ubuntu-latest
                outputs:
                  services: ${{ steps.list.outputs.services }}
                steps:
                  - id: list
                    run: echo 'services=["api", "batch"]' >> "$GITHUB_OUTPUT"
              build:
                needs: discover
                runs-on: ${{ matrix.runner }}
                strategy:
                  matrix:
                    service: ${{ fromJSON(needs.discover.outputs.services) }}
                    runner: [ubuntu-latest]
                steps:
                  - run: echo "building ${{ matrix.service }}"
              elsewhere:
                runs-on: ${{ format('{0}-latest', 'windows') }}
                steps:
                  - run: echo never
        """),
    )
    outcome = ci_run(repo)
    keys = sorted(job.key for job in outcome.store.jobs(outcome.result.run_id))
    assert keys == [
        "build (api, ubuntu-latest)",
        "build (batch, ubuntu-latest)",
        "discover",
        "elsewhere",
    ]
    assert "building batch" in outcome.log("build (batch, ubuntu-latest)")
    assert outcome.job("elsewhere").conclusion is Conclusion.FAILURE
    assert "runs-on windows-latest cannot run on this host" in outcome.log("elsewhere")


def test_node_actions_get_state_in_their_post_step(tmp_path: Path, ci_run: RunFn) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            **wf("""
                on: push
                jobs:
                  js:
                    runs-on: ubuntu-latest
                    steps:
                      - uses: actions/checkout@v4
                      - uses: ./.github/actions/stateful
                      - run: echo main-steps-done
            """),
            ".github/actions/stateful/action.yml": """
                name: stateful
                runs:
                  using: node20
                  main: main.js
                  post: post.js
            """,
            ".github/actions/stateful/main.js": """
                require('fs').appendFileSync(process.env.GITHUB_STATE, 'started=at-main\\n');
            """,
            ".github/actions/stateful/post.js": """
                console.log(`post sees ${process.env.STATE_started}`);
            """,
        },
    )
    outcome = ci_run(repo)
    assert outcome.result.conclusion is Conclusion.SUCCESS, outcome.log("js")
    lines = outcome.lines["js"]
    assert lines.index("main-steps-done") < lines.index("post sees at-main")


def test_a_folder_without_a_commit_is_refused_with_what_to_do(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / ".github" / "workflows").mkdir(parents=True)
    (plain / ".github" / "workflows" / "ci.yml").write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: 'true'\n"
    )
    cli = CliRunner()
    result = cli.invoke(main.app, ["ci", "run", str(plain), "--list"])
    assert result.exit_code == 2, result.output
    assert f"{plain}: is not a git checkout" in result.output
    assert "git init" in result.output

    subprocess.run(["git", "init", "-q", str(plain)], check=True)
    result = cli.invoke(main.app, ["ci", "run", str(plain), "--list"])
    assert result.exit_code == 2, result.output
    assert f"{plain}: has no commit yet" in result.output
