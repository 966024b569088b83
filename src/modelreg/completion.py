"""Shell completion for ``modelreg``: bash, zsh and fish, without extra dependencies.

``modelreg completion bash`` (or ``zsh``, ``fish``) prints a script; loaded into the shell, it
asks ``modelreg __complete`` (a hidden command) for the candidates of the word being completed:
commands, their options, stage names, and the model names, versions (``churn/3``) and aliases
(``churn@champion``) of the registry in effect (``--registry`` on the line, else
``$MODELREG_URI``, else the default folder). Completion never creates a registry: a folder
without a database offers no names, and a bucket that does not answer within two seconds none
either. Paths (``register NAME PATH``, ``download REF DEST``, ``--registry``) are completed by
the shell.

    >>> from modelreg.cli import build_parser
    >>> words = split_line("modelreg transition churn/1 pro")
    >>> words
    ['transition', 'churn/1', 'pro']
    >>> candidates(words, build_parser)
    ['production']
    >>> candidates(split_line("modelreg reg"), build_parser)
    ['register']

The command line's parser comes from the caller (:func:`modelreg.cli.build_parser`): this module
does not import the CLI, which imports it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FILES", "SHELLS", "candidates", "script", "split_line"]

FILES = "__files__"
"""Printed alone by ``modelreg __complete`` when the shell should complete a path instead."""

_STAGES = ("experimental", "staging", "production", "archived")
_REF_METAVARS = {"REF", "REF_A", "REF_B", "NAME", "NAME|REF", "NAME/VERSION", "SRC_REF"}
_PATH_METAVARS = {"PATH", "DEST", "SRC", "DST", "FILE", "FILE|-", "DIR", "FOLDER"}
_PATH_OPTIONS = {"--registry", "--cursor-file", "--out", "--dest"}
_REMOTE_TIMEOUT = 2.0


def split_line(line: str) -> list[str]:
    """The words of a command line up to the cursor, after the program name; the last one is the
    word being completed (``""`` after a space). An unclosed quote extends to the end."""
    words: list[str] | None = None
    for closing in ("", '"', "'"):
        try:
            words = shlex.split(line + closing)
            break
        except ValueError:
            continue
    if words is None:
        words = line.split()
    if not line or line[-1].isspace():
        words.append("")
    return words[1:] if len(words) > 1 else [""]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _takes_value(action: argparse.Action | None) -> bool:
    return action is not None and action.nargs != 0


ParserFactory = Callable[..., argparse.ArgumentParser]
"""``build_parser(load=())`` of :mod:`modelreg.cli`: the full parser, extensions named in ``load`` loaded."""


def candidates(words: Sequence[str], build_parser: ParserFactory) -> list[str]:
    """What may replace the last of ``words`` (the arguments after ``modelreg``): commands and options
    sorted, stages in their order, names sorted."""
    *before, current = list(words) or [""]
    parser = build_parser()
    active = parser
    command: str | None = None
    positionals: list[str] = []
    registry: str | None = None
    expecting: argparse.Action | None = None
    only_positionals = False
    for word in before:
        if expecting is not None:
            if "--registry" in expecting.option_strings:
                registry = word
            expecting = None
            continue
        if word == "--":
            only_positionals = True
            continue
        if word.startswith("-") and len(word) > 1 and not only_positionals:
            name, eq, value = word.partition("=")
            action = active._option_string_actions.get(name) or parser._option_string_actions.get(name)
            if eq:
                if name == "--registry":
                    registry = value
            elif _takes_value(action):
                expecting = action
            continue
        sub = _subparsers(active)
        if sub is not None and not positionals and word in sub.choices:
            if command is None:
                command = word
                target = sub.choices[word].get_default("_extension")
                if isinstance(target, str):  # an extension's stub: load the module for its real options
                    loaded = _subparsers(build_parser(load=[target]))
                    if loaded is not None and word in loaded.choices:
                        sub = loaded
            active = sub.choices[word]
            continue
        positionals.append(word)

    if expecting is not None:
        return _option_values(expecting, current)
    if current.startswith("-"):
        options = {o for a in active._actions for o in a.option_strings if o.startswith("--")}
        return sorted(o for o in options if o.startswith(current))
    sub = _subparsers(active)
    if sub is not None and not positionals:
        return sorted(c for c in sub.choices if c.startswith(current) and not c.startswith("_"))
    slots = [a for a in active._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]
    if not slots:
        return []
    slot = slots[min(len(positionals), len(slots) - 1)]
    if len(positionals) >= len(slots) and slot.nargs not in ("*", "+", argparse.REMAINDER):
        return []
    if slot.choices:
        return sorted(str(c) for c in slot.choices if str(c).startswith(current))
    return _positional(str(slot.metavar or slot.dest).upper(), current, positionals, registry)


def _option_values(action: argparse.Action, current: str) -> list[str]:
    if set(action.option_strings) & _PATH_OPTIONS:
        return [FILES]
    if action.choices:
        return sorted(str(c) for c in action.choices if str(c).startswith(current))
    if "--stage" in action.option_strings:
        return [s for s in _STAGES if s.startswith(current)]
    return []


def _positional(metavar: str, current: str, positionals: list[str], registry: str | None) -> list[str]:
    if metavar in _PATH_METAVARS:
        return [FILES]
    if metavar == "STAGE":
        return [s for s in _STAGES if s.startswith(current.lower())]
    model = positionals[0].split("@", 1)[0] if positionals else ""
    if metavar == "ALIAS":
        return sorted(a for a in _names(registry, "aliases", model) if a.startswith(current))
    if metavar == "VERSION":
        return sorted((v for v in _names(registry, "versions", model) if v.startswith(current)), key=int)
    if metavar not in _REF_METAVARS:
        return []
    if "@" in current:
        name, _, selector = current.partition("@")
        options = [*_STAGES, *_names(registry, "aliases", name)]
        return sorted(f"{name}@{s}" for s in options if s.startswith(selector))
    models = _names(registry, "models", "")
    out = [m for m in models if m.startswith(current)]
    for m in models:
        if current.startswith(m + "/"):
            out += [f"{m}/{v}" for v in _names(registry, "versions", m) if f"{m}/{v}".startswith(current)]
    return sorted(set(out))


def _names(registry: str | None, what: str, model: str) -> list[str]:
    """Model names, or a model's versions or aliases, from the registry in effect; [] when it
    does not exist yet, cannot be opened, or (a bucket) does not answer in time."""
    location = registry or os.environ.get("MODELREG_URI") or None
    if location is None:
        from .uri import default_registry_path

        location = str(default_registry_path())
    if "://" not in location and not (Path(location).expanduser() / "modelreg.db").is_file():
        return []  # nothing there yet: never create a registry to complete a word
    box: list[str] = []

    def read() -> None:
        try:
            from .registry import Registry

            with Registry(location) as reg:
                if what == "models":
                    box.extend(m.name for m in reg.list_models())
                elif what == "versions":
                    box.extend(str(v.version) for v in reg.list_versions(model))
                else:
                    box.extend(reg.get_model(model).aliases)
        except Exception:
            pass  # a completion never fails: no names

    if "://" not in location:
        read()
        return box
    worker = threading.Thread(target=read, name="modelreg-complete", daemon=True)
    worker.start()
    worker.join(_REMOTE_TIMEOUT)
    return list(box) if not worker.is_alive() else []


def complete_command(argv: Sequence[str], build_parser: ParserFactory) -> int:
    """``modelreg __complete --line LINE [--cur WORD]`` (bash: the line up to the cursor and the
    shell's current word, which may start after a ``@``, ``=`` or ``:``) or ``modelreg __complete
    -- WORD...`` (zsh, fish: the words after ``modelreg``, the last one being completed). Prints
    one candidate a line; never fails."""
    args = list(argv)
    try:
        if args[:1] == ["--line"]:
            line = args[1] if len(args) > 1 else ""
            cur = args[3] if len(args) > 3 and args[2] == "--cur" else None
            words = split_line(line)
        else:
            words = args[1:] if args[:1] == ["--"] else args
            cur = None
        found = candidates(words or [""], build_parser)
        if cur is not None and found != [FILES]:
            word = words[-1] if words else ""
            head = word[: len(word) - len(cur)] if cur and word.endswith(cur) else ("" if cur else word)
            found = [c[len(head) :] for c in found if c.startswith(head)]
        for c in found:
            print(c)
    except Exception:  # a broken completion must never disturb the shell
        return 0
    return 0


SHELLS = ("bash", "zsh", "fish")

_BASH = r"""# modelreg completion for bash. Load it with:
#   eval "$(modelreg completion bash)"       (e.g. in ~/.bashrc)
_modelreg_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local line="${COMP_LINE:0:COMP_POINT}"
    local IFS=$'\n'
    local -a out
    out=($("${COMP_WORDS[0]}" __complete --line "$line" --cur "$cur" 2>/dev/null))
    if [[ "${out[0]}" == "__files__" ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
        return 0
    fi
    COMPREPLY=("${out[@]}")
    return 0
}
complete -F _modelreg_complete modelreg
"""

_ZSH = r"""#compdef modelreg
# modelreg completion for zsh. Load it with:
#   eval "$(modelreg completion zsh)"        (e.g. in ~/.zshrc, after compinit)
_modelreg_complete() {
    local -a out
    out=("${(@f)$(${words[1]} __complete -- "${(@Q)words[2,CURRENT]}" 2>/dev/null)}")
    if [[ "${out[1]}" == "__files__" ]]; then
        _files
        return
    fi
    (( ${#out} )) && [[ -n "${out[1]}" ]] && compadd -Q -- "${out[@]}"
}
compdef _modelreg_complete modelreg
"""

_FISH = r"""# modelreg completion for fish. Load it with:
#   modelreg completion fish | source        (or save it as ~/.config/fish/completions/modelreg.fish)
function __modelreg_complete
    set -l tokens (commandline -opc) (commandline -ct)
    set -e tokens[1]
    set -l out (command modelreg __complete -- $tokens 2>/dev/null)
    if test "$out[1]" = "__files__"
        __fish_complete_path (commandline -ct)
    else
        printf '%s\n' $out
    end
end
complete -c modelreg -f -a '(__modelreg_complete)'
"""


def script(shell: str) -> str:
    """The completion script for ``shell`` (``bash``, ``zsh`` or ``fish``)."""
    return {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}[shell]
