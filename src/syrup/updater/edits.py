"""Surgical edits: find every reference to a repository in a YAML file and change only the
characters of its tag (or digest) in the original text.

A YAML parser finds the values (the composer gives each scalar node its exact start and end
character offsets in the text); the text itself is then spliced at those offsets. Nothing is
re-serialised, so comments, quoting, indentation, key order, blank lines and line endings stay
byte-for-byte, and a file without a match is returned unchanged. A value whose source text is
not its literal value (a quoted scalar with escapes, a folded block) is left alone with a
warning rather than guessed at.

The places an image can hide, all recognised in every document of a multi-document file:

* ``image:`` of a container, initContainer or ephemeralContainer of any workload, CronJob or
  Pod template (any ``image:`` key whose value is a reference to the repository);
* Helm values: a mapping with ``repository`` + ``tag`` (optionally ``registry`` and
  ``digest``), or another configured pair of sibling keys;
* ``kustomization.yaml`` ``images:`` entries (``name``/``newName`` + ``newTag``/``digest``;
  an entry with neither gets a ``newTag`` line);
* Argo CD Application sources: ``helm.parameters`` (``<prefix>repository`` +
  ``<prefix>tag`` pairs, or a parameter holding a whole reference) and ``kustomize.images``
  (``name=newName:tag`` strings).

NB: the parser is libyaml through PyYAML's ``CSafeLoader`` (pure-Python ``SafeLoader`` when
libyaml is missing), not ruamel.yaml: both give the same node marks (character index, line,
column; CRLF counted as two characters), and libyaml composes the waffle-world files about
fifty times faster than ruamel's pure-Python round-trip composer, which is what keeps an
event under the 50 ms goal.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from syrup.errors import InvalidInput
from syrup.updater import refs

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_HELM_KEYS: tuple[tuple[str, str], ...] = (("repository", "tag"),)
_KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})


class SlotState(enum.StrEnum):
    """What happened to one place that references the repository."""

    CHANGED = "changed"
    CURRENT = "current"
    """The file already holds the event's tag (and digest)."""
    OLDER = "older"
    """The event's tag is older than the file's by the image's policy: never written."""
    UNEDITABLE = "uneditable"


@dataclass(frozen=True)
class Target:
    """What to write: the repository and the version it now has."""

    repository: refs.Repository
    tag: str
    digest: str | None = None
    pin_digest: bool = False
    """Write the digest too where the file has a place for it (``name:tag@digest``)."""


@dataclass(frozen=True)
class Rules:
    """How to recognise the repository and how to order tags."""

    aliases: Mapping[str, str] = field(default_factory=dict)
    helm_keys: tuple[tuple[str, str], ...] = DEFAULT_HELM_KEYS
    is_older: Callable[[str, str], bool] = lambda current, candidate: False
    """``is_older(current, candidate)``: true when ``candidate`` must not replace ``current``."""


@dataclass(frozen=True)
class Slot:
    """One place in a file that references the repository."""

    line: int
    old: str
    new: str
    state: SlotState
    start: int = -1
    end: int = -1


@dataclass(frozen=True)
class FileResult:
    """The outcome for one file: its new text (same object when unchanged) and its slots."""

    path: str
    text: str
    slots: tuple[Slot, ...]

    @property
    def changed(self) -> bool:
        return any(slot.state is SlotState.CHANGED for slot in self.slots)


def needle(repository: refs.Repository) -> str:
    """Text every file referencing the repository contains: its path (without ``library/``
    for Docker Hub's official images, which are written bare). A file without it cannot
    reference the repository and need not be parsed."""
    path = repository.path
    if repository.host == refs.DOCKER_HUB:
        path = path.removeprefix("library/")
    return path


def edit(text: str, *, path: str, target: Target, rules: Rules) -> FileResult:
    """Find the references to ``target.repository`` in ``text`` and return the edited text.

    Raises :class:`InvalidInput` (naming the file and line) when the text is not YAML.
    """
    try:
        documents = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.YAMLError as error:
        mark = error.problem_mark if isinstance(error, yaml.MarkedYAMLError) else None
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InvalidInput(f"not valid YAML ({problem})", where=f"{path}{line}") from error

    finder = _Finder(path=path, text=text, target=target, rules=rules)
    for document in documents:
        if document is not None:
            finder.walk(document, parent_key=None)
    slots = sorted(finder.slots.values(), key=lambda slot: slot.start)

    # Splice from the end so earlier offsets stay valid.
    new_text = text
    for slot in reversed(slots):
        if slot.state is SlotState.CHANGED:
            new_text = new_text[: slot.start] + slot.new + new_text[slot.end :]
    return FileResult(path=path, text=new_text if new_text != text else text, slots=tuple(slots))


@dataclass
class _Finder:
    path: str
    text: str
    target: Target
    rules: Rules
    slots: dict[int, Slot] = field(default_factory=dict)
    _seen: set[int] = field(default_factory=set)

    def walk(self, node: Node, *, parent_key: str | None) -> None:
        # Aliases make the node graph a DAG; visit each node once.
        if id(node) in self._seen:
            return
        self._seen.add(id(node))
        if isinstance(node, MappingNode):
            self._visit_mapping(node, parent_key=parent_key)
            for key, value in node.value:
                self.walk(value, parent_key=key.value if isinstance(key, ScalarNode) else None)
        elif isinstance(node, SequenceNode):
            if parent_key == "images":
                self._visit_kustomize_strings(node)
            if parent_key == "parameters":
                self._visit_helm_parameters(node)
            for item in node.value:
                self.walk(item, parent_key=parent_key)

    # -- the places an image can be written ------------------------------------------------

    def _visit_mapping(self, node: MappingNode, *, parent_key: str | None) -> None:
        scalars = _scalars(node)
        image = scalars.get("image")
        if image is not None:
            self._reference_slot(image)
        for repository_key, tag_key in self.rules.helm_keys:
            if repository_key in scalars and tag_key in scalars:
                self._helm_values_slot(scalars, repository_key=repository_key, tag_key=tag_key)
        if parent_key == "images" and "name" in scalars:
            self._kustomize_entry_slot(node, scalars)

    def _reference_slot(self, node: ScalarNode) -> None:
        ref = refs.try_reference(node.value)
        if ref is None or not self._matches(ref.repository):
            return
        # A bare name is a repository key (Helm values' ``image:`` + ``version:``), not a pin.
        if ref.tag is None and ref.digest is None:
            return
        digest = self._new_digest(had_digest=ref.digest is not None)
        new = ref.with_version(tag=self.target.tag, digest=digest)
        self._add(node, new=new, current_tag=ref.tag)

    def _helm_values_slot(
        self, scalars: Mapping[str, ScalarNode], *, repository_key: str, tag_key: str
    ) -> None:
        name = scalars[repository_key].value
        if "registry" in scalars and scalars["registry"].value:
            name = f"{scalars['registry'].value}/{name}"
        repository = _try_repository(name)
        if repository is None or not self._matches(repository):
            return
        self._add(scalars[tag_key], new=self.target.tag, current_tag=scalars[tag_key].value)
        if "digest" in scalars and self.target.pin_digest and self.target.digest:
            self._add(scalars["digest"], new=self.target.digest, current_tag=None)

    def _kustomize_entry_slot(self, node: MappingNode, scalars: Mapping[str, ScalarNode]) -> None:
        name = scalars["newName"].value if "newName" in scalars else scalars["name"].value
        repository = _try_repository(name)
        if repository is None or not self._matches(repository):
            return
        if "newTag" in scalars:
            self._add(scalars["newTag"], new=self.target.tag, current_tag=scalars["newTag"].value)
        if "digest" in scalars and self.target.digest:
            self._add(scalars["digest"], new=self.target.digest, current_tag=None)
        if "newTag" not in scalars and "digest" not in scalars:
            self._insert_new_tag(node, scalars)

    def _insert_new_tag(self, node: MappingNode, scalars: Mapping[str, ScalarNode]) -> None:
        # Only in a kustomization file, and only into a block mapping of scalars, where a new
        # line at the entry's indentation after its last line is unambiguous.
        if self.path.rsplit("/", 1)[-1] not in _KUSTOMIZATION_FILES:
            return
        if node.flow_style or len(scalars) != len(node.value):
            return
        last_value = node.value[-1][1]
        newline = self.text.find("\n", last_value.end_mark.index)
        eol = "\r\n" if newline > 0 and self.text[newline - 1] == "\r" else "\n"
        at = len(self.text) if newline == -1 else newline + 1
        prefix = eol if newline == -1 else ""
        indent = " " * node.value[0][0].start_mark.column
        line = f'{prefix}{indent}newTag: "{self.target.tag}"{eol}'
        self.slots[at] = Slot(
            line=last_value.end_mark.line + 2,
            old="",
            new=line,
            state=SlotState.CHANGED,
            start=at,
            end=at,
        )

    def _visit_kustomize_strings(self, node: SequenceNode) -> None:
        # Argo CD's kustomize.images: "name=newName:tag", "name:tag" or "name@digest".
        for item in node.value:
            if not isinstance(item, ScalarNode) or not isinstance(item.value, str):
                continue
            left, equals, right = item.value.rpartition("=")
            ref = refs.try_reference(right)
            if ref is None or not self._matches(ref.repository):
                continue
            digest = self._new_digest(had_digest=ref.digest is not None)
            new = left + equals + ref.with_version(tag=self.target.tag, digest=digest)
            self._add(item, new=new, current_tag=ref.tag)

    def _visit_helm_parameters(self, node: SequenceNode) -> None:
        # Argo CD's helm.parameters: [{name: image.repository, value: ...}, {name: image.tag, ...}]
        by_name: dict[str, ScalarNode] = {}
        for item in node.value:
            if isinstance(item, MappingNode):
                scalars = _scalars(item)
                if "name" in scalars and "value" in scalars:
                    by_name[str(scalars["name"].value)] = scalars["value"]
        for name, value in by_name.items():
            for repository_key, tag_key in self.rules.helm_keys:
                if not name.endswith(repository_key):
                    continue
                tag_node = by_name.get(name[: -len(repository_key)] + tag_key)
                repository = _try_repository(str(value.value))
                if tag_node is not None and repository is not None and self._matches(repository):
                    self._add(tag_node, new=self.target.tag, current_tag=str(tag_node.value))

    # -- helpers ---------------------------------------------------------------------------

    def _matches(self, repository: refs.Repository) -> bool:
        aliases = self.rules.aliases
        return refs.canonical(repository, aliases=aliases) == refs.canonical(
            self.target.repository, aliases=aliases
        )

    def _new_digest(self, *, had_digest: bool) -> str | None:
        # A stale digest would win over the new tag at pull time: replace it or drop it.
        if self.target.pin_digest or had_digest:
            return self.target.digest
        return None

    def _add(self, node: ScalarNode, *, new: str, current_tag: str | None) -> None:
        start, end = node.start_mark.index, node.end_mark.index
        line = node.start_mark.line + 1
        raw = self.text[start:end]
        old = str(node.value)

        # Only a value whose source characters are the value itself can be spliced safely.
        if node.style in ('"', "'"):
            inner, start, end = raw[1:-1], start + 1, end - 1
        elif node.style is None or node.style == "":
            inner = raw
        else:
            inner = None
        if inner != old:
            self.slots[start] = Slot(line=line, old=old, new=new, state=SlotState.UNEDITABLE)
            return

        if new == old:
            state = SlotState.CURRENT
        elif current_tag is not None and self.rules.is_older(current_tag, self.target.tag):
            state = SlotState.OLDER
        else:
            state = SlotState.CHANGED
        self.slots[start] = Slot(line=line, old=old, new=new, state=state, start=start, end=end)


def _scalars(node: MappingNode) -> dict[str, ScalarNode]:
    return {
        key.value: value
        for key, value in node.value
        if isinstance(key, ScalarNode) and isinstance(value, ScalarNode)
    }


def _try_repository(text: str) -> refs.Repository | None:
    try:
        return refs.parse_repository(text)
    except InvalidInput:
        return None
