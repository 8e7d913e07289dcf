"""Shell completion: the bash and zsh scripts, and `labctl __complete WORDS...`, which they
run on every TAB to get the candidates (commands, lab names, node names, show tables, link
names, options). Labs and nodes come from what `up` recorded; nothing is contacted."""

from __future__ import annotations

import sys
from collections.abc import Iterable

COMMANDS = (
    "validate",
    "schema",
    "up",
    "down",
    "status",
    "inspect",
    "exec",
    "show",
    "push",
    "capture",
    "ui",
    "graph",
    "test",
    "junit-merge",
    "completion",
    "images",
)
# Commands whose positional arguments are files: the shell completes those itself.
FILE_COMMANDS = {"validate", "up", "graph", "test", "junit-merge", "down"}
FIXED_CHOICES = {"completion": ("bash", "zsh"), "images": ("build", "list", "prune")}
# Options that take a value, so the word after them is not a positional.
VALUE_OPTIONS = {
    "--lab",
    "--name",
    "-w",
    "--write",
    "--keys",
    "-c",
    "--count",
    "--seconds",
    "--host",
    "--port",
    "--reports",
    "--token",
    "--stop-after",
    "--format",
    "-o",
    "--output",
    "--scenario",
    "--report-dir",
    "--junit",
    "--lab-prefix",
    "--shard",
    "--repeat",
}


def lab_names() -> list[str]:
    from ..lifecycle.labstate import known_state_labs

    try:
        return sorted(known_state_labs())
    except OSError:  # not root: the state root is not readable
        return []


def _record(lab: str) -> dict:
    from ..lifecycle.labstate import LabState

    try:
        return LabState.of(lab).read_record() or {}
    except (OSError, ValueError):
        return {}


def _topology(lab: str) -> dict:
    return (_record(lab).get("model") or {}).get("topology") or {}


def node_kinds(labs: Iterable[str]) -> dict[str, str]:
    """node -> kind over the given labs (a name in two labs keeps the first's kind)."""
    kinds: dict[str, str] = {}
    for lab in labs:
        for node, spec in (_topology(lab).get("nodes") or {}).items():
            kinds.setdefault(node, (spec or {}).get("kind", ""))
    return kinds


def link_targets(labs: Iterable[str]) -> list[str]:
    targets: list[str] = []
    for lab in labs:
        for index, link in enumerate(_topology(lab).get("links") or []):
            targets.append(link.get("name") or f"link{index}")
            targets += list(link.get("endpoints") or [])
    return targets


def show_names(kind: str) -> list[str]:
    """The kind's tables in any of its implementations (the record's node is not loaded)."""
    from ..kinds.registry import UnknownKindError, spec_of
    from ..state import COMMON_SHOWS

    names = {show.name for show in COMMON_SHOWS}
    try:
        for implementation in spec_of(kind).implementations:
            names |= {show.name for show in implementation.shows}
    except UnknownKindError:
        pass
    return sorted(names)


def options_of(command: str) -> list[str]:
    from .main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # the subparsers action
    chosen = sub.choices.get(command)  # type: ignore[union-attr]
    if chosen is None:
        return []
    return sorted(o for a in chosen._actions for o in a.option_strings)


def candidates(words: list[str]) -> list[str]:
    """Completions for the last word of `labctl WORDS...` (the last may be empty)."""
    *before, current = words or [""]
    positionals: list[str] = []
    lab: str | None = None
    skip = False
    for index, word in enumerate(before):
        if skip:
            skip = False
            if before[index - 1] == "--lab":
                lab = word
            continue
        if word in VALUE_OPTIONS:
            skip = True
        elif not word.startswith("-"):
            positionals.append(word)
    if before and before[-1] in VALUE_OPTIONS:
        return lab_names() if before[-1] == "--lab" else []
    if not positionals:
        return list(COMMANDS) if not current.startswith("-") else ["-q", "--quiet", "--debug"]
    command, args = positionals[0], positionals[1:]
    if current.startswith("-"):
        return options_of(command)
    labs = [lab] if lab else lab_names()
    if command in FIXED_CHOICES and not args:
        return list(FIXED_CHOICES[command])
    if command in ("down", "status", "inspect") and not args:
        return lab_names()
    if command in ("exec", "push") and (command == "push" or not args):
        return sorted(node_kinds(labs))
    if command == "show":
        kinds = node_kinds(labs)
        if not args:
            return sorted(kinds)
        if len(args) == 1 and args[0] in kinds:
            return show_names(kinds[args[0]])
    if command == "capture" and not args:
        return sorted(set(link_targets(labs)))
    return []


def complete(words: list[str]) -> int:
    current = words[-1] if words else ""
    for candidate in candidates(words):
        if candidate.startswith(current):
            sys.stdout.write(candidate + "\n")
    return 0


BASH = """# labctl bash completion: eval "$(labctl completion bash)" (or save it under
# /etc/bash_completion.d/labctl)
_labctl() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local IFS=$'\\n'
    COMPREPLY=($(labctl __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    local command=${COMP_WORDS[1]}
    case " %(files)s " in
        *" $command "*) [ "$COMP_CWORD" -gt 1 ] && [[ $cur != -* ]] \\
            && COMPREPLY+=($(compgen -f -- "$cur")) ;;
    esac
    return 0
}
complete -o filenames -F _labctl labctl
"""

ZSH = """#compdef labctl
# labctl zsh completion: eval "$(labctl completion zsh)" (or save it as _labctl in $fpath)
_labctl() {
    local -a candidates
    candidates=("${(@f)$(labctl __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    candidates=(${candidates:#})
    (( ${#candidates} )) && compadd -a candidates
    case " %(files)s " in
        *" ${words[2]} "*) (( CURRENT > 2 )) && _files ;;
    esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _labctl "$@"
else
    compdef _labctl labctl
fi
"""


def script(shell: str) -> str:
    template = BASH if shell == "bash" else ZSH
    return template % {"files": " ".join(sorted(FILE_COMMANDS))}
