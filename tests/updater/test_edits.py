"""Surgical edits: every place an image can be written is found, and only the tag's
characters change; everything else in the file stays byte-for-byte."""

from __future__ import annotations

import pytest

from syrup.errors import InvalidInput
from syrup.updater import edits, policies, refs

APP = refs.parse_repository("registry.example.com/team/app")
DIGEST = "sha256:" + "cd" * 32
TARGET = edits.Target(repository=APP, tag="2.0.0", digest=DIGEST)

CASES = [
    (
        "deployment containers and initContainers",
        "kind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n"
        "      - name: migrate\n        image: registry.example.com/team/app:1.0.0\n"
        "      containers:\n      - name: app\n        image: registry.example.com/team/app:1.0.0\n"
        "      - name: sidecar\n        image: registry.example.com/team/other:1.0.0\n",
        "kind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n"
        "      - name: migrate\n        image: registry.example.com/team/app:2.0.0\n"
        "      containers:\n      - name: app\n        image: registry.example.com/team/app:2.0.0\n"
        "      - name: sidecar\n        image: registry.example.com/team/other:1.0.0\n",
    ),
    (
        "cronjob template with ephemeralContainers",
        "kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
        "          ephemeralContainers:\n          - image: registry.example.com/team/app:1.0.0\n",
        "kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
        "          ephemeralContainers:\n          - image: registry.example.com/team/app:2.0.0\n",
    ),
    (
        "multi-document file, only the matching document changes",
        "# first\nkind: Service\nmetadata: {name: app}\n---\nkind: Pod\nspec:\n  containers:\n"
        "  - image: 'registry.example.com/team/app:1.0.0'   # pinned by the bot\n---\n# empty\n",
        "# first\nkind: Service\nmetadata: {name: app}\n---\nkind: Pod\nspec:\n  containers:\n"
        "  - image: 'registry.example.com/team/app:2.0.0'   # pinned by the bot\n---\n# empty\n",
    ),
    (
        "double-quoted value with a comment and CRLF line endings",
        'spec:\r\n  containers:\r\n  - image: "registry.example.com/team/app:1.0.0" # keep\r\n\r\n',
        'spec:\r\n  containers:\r\n  - image: "registry.example.com/team/app:2.0.0" # keep\r\n\r\n',
    ),
    (
        "flow-style container list",
        "spec: {containers: [{name: a, image: registry.example.com/team/app:1.0.0}]}\n",
        "spec: {containers: [{name: a, image: registry.example.com/team/app:2.0.0}]}\n",
    ),
    (
        "Helm values repository and tag",
        'image:\n  repository: registry.example.com/team/app  # where\n  tag: "1.0.0"\n'
        "  pullPolicy: IfNotPresent\nother:\n  repository: registry.example.com/team/other\n"
        "  tag: 1.0.0\n",
        'image:\n  repository: registry.example.com/team/app  # where\n  tag: "2.0.0"\n'
        "  pullPolicy: IfNotPresent\nother:\n  repository: registry.example.com/team/other\n"
        "  tag: 1.0.0\n",
    ),
    (
        "Helm values with a separate registry key",
        "image:\n  registry: registry.example.com\n  repository: team/app\n  tag: 1.0.0\n",
        "image:\n  registry: registry.example.com\n  repository: team/app\n  tag: 2.0.0\n",
    ),
    (
        "kustomization images newTag, by name or by newName",
        "images:\n- name: registry.example.com/team/app\n  newTag: '1.0.0'\n"
        "- name: placeholder\n  newName: registry.example.com/team/app\n  newTag: 1.0.0\n"
        "- name: registry.example.com/team/other\n  newTag: 1.0.0\n",
        "images:\n- name: registry.example.com/team/app\n  newTag: '2.0.0'\n"
        "- name: placeholder\n  newName: registry.example.com/team/app\n  newTag: 2.0.0\n"
        "- name: registry.example.com/team/other\n  newTag: 1.0.0\n",
    ),
    (
        "kustomization images digest",
        "images:\n- name: registry.example.com/team/app\n  digest: sha256:" + "00" * 32 + "\n",
        "images:\n- name: registry.example.com/team/app\n  digest: " + DIGEST + "\n",
    ),
    (
        "Argo CD Application helm parameters",
        "kind: Application\nspec:\n  source:\n    helm:\n      parameters:\n"
        "      - name: image.repository\n        value: registry.example.com/team/app\n"
        '      - name: image.tag\n        value: "1.0.0"\n',
        "kind: Application\nspec:\n  source:\n    helm:\n      parameters:\n"
        "      - name: image.repository\n        value: registry.example.com/team/app\n"
        '      - name: image.tag\n        value: "2.0.0"\n',
    ),
    (
        "Argo CD Application kustomize images (multi-source)",
        "kind: Application\nspec:\n  sources:\n  - kustomize:\n      images:\n"
        "      - registry.example.com/team/app:1.0.0\n"
        "      - app=registry.example.com/team/app:1.0.0\n",
        "kind: Application\nspec:\n  sources:\n  - kustomize:\n      images:\n"
        "      - registry.example.com/team/app:2.0.0\n"
        "      - app=registry.example.com/team/app:2.0.0\n",
    ),
    (
        "a stale digest is replaced, never left to win over the new tag",
        f"containers:\n- image: registry.example.com/team/app:1.0.0@sha256:{'00' * 32}\n",
        f"containers:\n- image: registry.example.com/team/app:2.0.0@{DIGEST}\n",
    ),
    (
        "a host alias matches",
        "containers:\n- image: mirror.example.com/team/app:1.0.0\n",
        "containers:\n- image: mirror.example.com/team/app:2.0.0\n",
    ),
]


@pytest.mark.parametrize(("name", "before", "after"), CASES, ids=[c[0] for c in CASES])
def test_only_the_tag_characters_change(name: str, before: str, after: str) -> None:
    rules = edits.Rules(aliases={"mirror.example.com": "registry.example.com"})
    result = edits.edit(before, path="f.yaml", target=TARGET, rules=rules)
    assert result.text == after
    assert result.changed


@pytest.mark.parametrize(
    "text",
    [
        "containers:\n- image: registry.example.com/team/application:1.0.0\n",
        "containers:\n- image: other.example.com/team/app:1.0.0\n",
        "containers:\n- image: registry.example.com/app:1.0.0\n",
        "env:\n- name: IMAGE\n  value: registry.example.com/team/app:1.0.0\n",
    ],
)
def test_a_file_without_a_match_is_returned_unchanged(text: str) -> None:
    result = edits.edit(text, path="f.yaml", target=TARGET, rules=edits.Rules())
    assert result.text is text
    assert not result.slots


def test_docker_hub_short_names_match_their_full_form() -> None:
    target = edits.Target(repository=refs.parse_repository("docker.io/library/nginx"), tag="1.27")
    text = "containers:\n- image: nginx:1.25\n- image: index.docker.io/library/nginx:1.25\n"
    result = edits.edit(text, path="f.yaml", target=target, rules=edits.Rules())
    assert (
        result.text
        == "containers:\n- image: nginx:1.27\n- image: index.docker.io/library/nginx:1.27\n"
    )


def test_a_configured_pair_of_helm_keys_is_recognised() -> None:
    text = "app:\n  image: registry.example.com/team/app\n  version: 1.0.0\n"
    rules = edits.Rules(helm_keys=(("image", "version"),))
    result = edits.edit(text, path="values.yaml", target=TARGET, rules=rules)
    assert result.text == "app:\n  image: registry.example.com/team/app\n  version: 2.0.0\n"


def test_an_older_tag_is_never_written() -> None:
    text = "containers:\n- image: registry.example.com/team/app:3.1.0\n"
    policy = policies.compile_policy(ordering="semver")
    result = edits.edit(
        text, path="f.yaml", target=TARGET, rules=edits.Rules(is_older=policy.is_older)
    )
    assert result.text is text
    assert [slot.state for slot in result.slots] == [edits.SlotState.OLDER]


def test_the_tag_already_in_git_changes_nothing() -> None:
    text = "containers:\n- image: registry.example.com/team/app:2.0.0\n"
    result = edits.edit(text, path="f.yaml", target=TARGET, rules=edits.Rules())
    assert result.text is text
    assert [slot.state for slot in result.slots] == [edits.SlotState.CURRENT]


def test_an_escaped_scalar_is_left_alone_rather_than_guessed_at() -> None:
    text = 'containers:\n- image: "registry.example.com/team/app:1.0.\\x30"\n'
    result = edits.edit(text, path="f.yaml", target=TARGET, rules=edits.Rules())
    assert result.text is text
    assert [slot.state for slot in result.slots] == [edits.SlotState.UNEDITABLE]


def test_a_file_that_does_not_parse_names_the_file_and_line() -> None:
    text = "a: 1\nb: [unclosed\nc: {{ .Values.x }}\n"
    with pytest.raises(InvalidInput, match=r"apps/templates/app.yaml:\d+: not valid YAML"):
        edits.edit(text, path="apps/templates/app.yaml", target=TARGET, rules=edits.Rules())


@pytest.mark.parametrize(
    ("path", "before", "after"),
    [
        (
            "apps/kustomization.yaml",
            "images:\r\n- name: registry.example.com/team/app  # the api\r\n"
            "resources: [a.yaml]\r\n",
            'images:\r\n- name: registry.example.com/team/app  # the api\r\n  newTag: "2.0.0"\r\n'
            "resources: [a.yaml]\r\n",
        ),
        (
            "kustomization.yml",
            "images:\n  - name: app\n    newName: registry.example.com/team/app",
            "images:\n  - name: app\n    newName: registry.example.com/team/app\n"
            '    newTag: "2.0.0"\n',
        ),
        (
            "values.yaml",
            "images:\n- name: registry.example.com/team/app\n",
            "images:\n- name: registry.example.com/team/app\n",
        ),
    ],
)
def test_a_kustomization_image_without_a_tag_gets_a_new_tag_line(
    path: str, before: str, after: str
) -> None:
    result = edits.edit(before, path=path, target=TARGET, rules=edits.Rules())
    assert result.text == after
