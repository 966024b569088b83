"""The ``modelreg`` command line (also ``python -m modelreg``).

Every command goes through the :class:`~modelreg.Registry` facade. Output is
an aligned plain-text table or summary by default and JSON with ``--json``.
Errors print ``error: <message>`` on stderr, without a traceback.

Exit codes: 0 success; 1 an operation failed (not found, invalid transition,
integrity or other backend error, ``verify`` found problems); 2 invalid input or
usage (a bad argument, name, reference, metric, ...); 3 access denied
(:class:`~modelreg.errors.AccessDeniedError`: credentials, permissions, a read-only
file system); 4 the storage location does not exist
(:class:`~modelreg.errors.StorageNotFoundError`: bucket, container, folder); 5 the
backend is unreachable or busy, retry later (:class:`~modelreg.errors.UnreachableError`
and its :class:`~modelreg.errors.BackendBusyError`); 6 out of space
(:class:`~modelreg.errors.OutOfSpaceError`); 130 interrupted. A local file that
cannot be written for lack of space or permission exits with 6 or 3 as well.

Adding commands from another module
-----------------------------------
Append ``(command, one-line help, "package.module:function")`` to
:data:`EXTENSIONS`. ``modelreg --help`` lists the command without importing the
module; only when that command runs is the module imported and
``function(subparsers)`` called. The function adds its parser(s) with
``subparsers.add_parser(name, help=...)`` (they get the common options
``--registry``, ``--actor``, ``--json``, ``--progress`` automatically) and
``parser.set_defaults(func=handler)``, where ``handler(ctx, args)`` receives a
:class:`Context` (``ctx.registry``, ``ctx.json``, ``ctx.emit``, ``ctx.out``,
``ctx.table``, ``ctx.progress``) and returns an exit code or None; a handler
taking only ``args`` is called as ``handler(args)``. A parser may redefine a
common option (e.g. its own ``--registry``); a value given before the command
name still reaches it. Several commands may share one function; it is called
once and adds all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from .errors import InvalidInputError, ModelregError
from .formatting import fmt_time, human_size, short_digest
from .progress import ProgressBar

__all__ = ["EXTENSIONS", "Context", "build_parser", "format_duration", "format_table", "main", "parse_duration"]

EXTENSIONS: list[tuple[str, str, str]] = [
    ("ui", "serve the web UI on 127.0.0.1", "modelreg.ui.cli:add_commands"),
    ("request", "ask for a stage transition that the policy gates", "modelreg.governance.cli:add_commands"),
    ("approve", "approve a pending transition request", "modelreg.governance.cli:add_commands"),
    ("reject", "reject a pending transition request", "modelreg.governance.cli:add_commands"),
    ("cancel", "withdraw your pending transition request", "modelreg.governance.cli:add_commands"),
    ("complete", "carry out an approved transition request", "modelreg.governance.cli:add_commands"),
    ("requests", "list transition requests (pending by default)", "modelreg.governance.cli:add_commands"),
    ("policy", "show, check or set the registry's governance policy", "modelreg.governance.cli:add_commands"),
    ("events", "read the durable events feed from a cursor", "modelreg.governance.cli:add_commands"),
    ("webhook", "add, list or remove webhooks; show deliveries", "modelreg.governance.cli:add_commands"),
    (
        "serve",
        "serve the registry as an HTTP JSON API (/api/v1) with tokens and roles",
        "modelreg.api.cli:add_commands",
    ),
    ("token", "create, list or revoke API tokens for `modelreg serve`", "modelreg.api.cli:add_commands"),
    ("import", "import another registry with its history (MLflow)", "modelreg.trackers.cli:add_commands"),
]
"""Lazily imported subcommands: ``(command, help, "module:function")``; see the module docstring."""

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_ACCESS_DENIED, EXIT_STORAGE_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_OUT_OF_SPACE = 3, 4, 5, 6

REF_HELP = "a version: churn (latest), churn/3, churn@production or churn@champion"

Handler = Callable[["Context", argparse.Namespace], "int | None"]


# -- output helpers --------------------------------------------------------------------------------
def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    if isinstance(value, datetime):
        return _when(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return " ".join(str(value).split())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Align ``rows`` under ``headers`` (two spaces apart); numeric columns are right-aligned."""
    rows = [list(r) for r in rows]
    numeric = [
        all(_is_number(r[i]) or r[i] is None for r in rows) and any(_is_number(r[i]) for r in rows)
        for i in range(len(headers))
    ]
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str], header: bool = False) -> str:
        parts = [v.rjust(widths[i]) if numeric[i] and not header else v.ljust(widths[i]) for i, v in enumerate(values)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers, header=True), *(line(r) for r in cells)])


def _when(dt: datetime | None) -> str:
    return fmt_time(dt, missing="-")


def _short_digest(digest: str) -> str:
    return short_digest(digest, algorithm=True)


def _value(value: Any) -> str:
    """Full-precision display of a param, metric or tag value."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _kv(pairs: Iterable[tuple[str, Any]], indent: int = 2) -> list[str]:
    pairs = [(k, v) for k, v in pairs if v not in (None, "", [], {})]
    if not pairs:
        return []
    width = max(len(k) for k, _ in pairs)
    return [f"{' ' * indent}{k.ljust(width)}  {v}" for k, v in pairs]


def _compact(values: Mapping[str, Any], width: int = 40) -> str:
    return _clip(" ".join(f"{k}={_cell(v)}" for k, v in values.items()), width) if values else ""


_VERSION_HEAD = ("name", "version", "stage", "aliases")


def _jsonable(data: Any) -> Any:
    if hasattr(data, "model_dump"):
        dumped = data.model_dump(mode="json")
        from .models import ModelVersion

        if isinstance(data, ModelVersion):  # what scripts need, at the top: ref, stage, aliases, digest, size
            head = {k: dumped[k] for k in _VERSION_HEAD if k in dumped}
            return {"ref": data.ref, **head, "digest": data.digest, "size": data.size, **dumped}
        return dumped
    if isinstance(data, (list, tuple)):
        return [_jsonable(d) for d in data]
    if isinstance(data, dict):
        return {str(k): _jsonable(v) for k, v in data.items()}
    return data


# -- argument helpers ------------------------------------------------------------------------------
def _pairs(items: Iterable[str] | None, what: str, example: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} must look like KEY=VALUE, e.g. {example}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_param_value(text: str) -> Any:
    """``0.1`` -> 0.1, ``true`` -> True, ``[1,2]`` -> [1, 2]; anything that is not JSON stays a string."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _metrics(items: Iterable[str] | None, what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, text in _pairs(items, what, "auc=0.91").items():
        try:
            out[key] = float(text)
        except ValueError:
            raise InvalidInputError(f"metric {key!r}: {text!r} is not a number") from None
    return out  # NaN and inf are rejected by the Registry, with the key named


def _dataset(text: str) -> dict[str, str]:
    """``URI[@version]``; ``@sha256:<hex>`` records a digest instead of a version."""
    uri, sep, tail = text.rpartition("@")
    if not sep or not uri or not tail or "/" in tail:
        return {"uri": text}
    if tail.startswith("sha256:"):
        return {"uri": uri, "digest": tail}
    return {"uri": uri, "version": tail}


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"1h"``, ``"30m"``, ``"1h30m"``, ``"2d"``, ``"0s"`` or plain seconds (``"90"``)."""
    s = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return timedelta(seconds=float(s))
    if not s or not re.fullmatch(r"(?:\d+(?:\.\d+)?[smhdw])+", s):
        raise InvalidInputError(
            f"invalid duration {text!r}; use a number with a unit s, m, h, d or w, e.g. 30m, 1h, 1h30m, 0s"
        )
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_RE.findall(s)))


def format_duration(delta: timedelta) -> str:
    """A duration as :func:`parse_duration` reads it: ``timedelta(seconds=5)`` -> ``"5s"``, 5400 s -> ``"1h30m"``."""
    rest = delta.total_seconds()
    if rest <= 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m"):
        n = int(rest // _UNIT_SECONDS[unit])
        if n:
            parts.append(f"{n}{unit}")
            rest -= n * _UNIT_SECONDS[unit]
    if rest > 1e-9 or not parts:
        parts.append(f"{round(rest, 6):g}s")
    return "".join(parts)


def _read_text(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


# -- context ---------------------------------------------------------------------------------------
class Context:
    """What a command handler gets: the registry (opened on first use) and output helpers."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.json: bool = bool(getattr(args, "json", False))
        self._registry: Any = None
        self._bars: list[ProgressBar] = []

    @property
    def registry(self) -> Any:
        """The :class:`~modelreg.Registry` from ``--registry``, else ``$MODELREG_URI``, else the default."""
        if self._registry is None:
            from .registry import Registry

            self._registry = Registry(getattr(self.args, "registry", None), actor=getattr(self.args, "actor", None))
        return self._registry

    def progress(self) -> ProgressBar | None:
        """A progress bar on stderr, or None when disabled (``--no-progress``, or stderr is not a terminal
        and ``--progress`` was not given)."""
        mode = getattr(self.args, "progress", None)
        if mode is False:
            return None
        bar = ProgressBar(sys.stderr, force=True if mode else None)
        if not bar.enabled:
            return None
        self._bars.append(bar)
        return bar

    def end_progress(self) -> None:
        """Finish any progress line; call before printing results."""
        for bar in self._bars:
            bar.close()
        self._bars.clear()

    def out(self, text: str = "") -> None:
        print(text, file=sys.stdout)

    def note(self, text: str) -> None:
        """A hint for humans, on stderr (keeps stdout clean for pipes)."""
        print(text, file=sys.stderr)

    def emit(self, data: Any) -> None:
        """Print pydantic records, lists or dicts as JSON (``model_dump(mode="json")``)."""
        print(json.dumps(_jsonable(data), indent=2, ensure_ascii=False), file=sys.stdout)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.out(format_table(headers, rows))

    def close(self) -> None:
        self.end_progress()
        if self._registry is not None:
            self._registry.close()
            self._registry = None


# -- parser ----------------------------------------------------------------------------------------
def _add_common(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """Options valid both before and after the subcommand (``suppress`` keeps a value given before)."""
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    g = parser.add_argument_group("common options")
    g.add_argument(
        "--registry",
        metavar="URL",
        help="registry folder or URL (default: $MODELREG_URI, else $MODELREG_HOME or ~/.modelreg/registry)",
        **({"default": None} | d),
    )
    g.add_argument(
        "--actor",
        metavar="NAME",
        help="who is acting, for the audit trail (default: $MODELREG_ACTOR, else git user.email, else the OS user)",
        **({"default": None} | d),
    )
    g.add_argument("--json", action="store_true", help="print JSON instead of tables", **({"default": False} | d))
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        help="always draw progress bars on stderr (default: only on a terminal)",
        **({"default": None} | d),
    )
    g.add_argument(
        "--no-progress", dest="progress", action="store_const", const=False, help="never draw progress bars", **d
    )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors suggest the closest command or option: ``modelreg regster``
    -> "did you mean 'register'?"."""

    argv: Sequence[str] = ()  # the arguments being parsed, set by _parse: the command whose options to suggest

    def error(self, message: str) -> NoReturn:
        super().error(self._with_suggestion(message))

    def _with_suggestion(self, message: str) -> str:
        from .suggest import closest

        m = re.search(r"invalid choice: '?([^',)]+)'?", message)
        if m:
            choices = [c for a in self._actions if a.choices for c in a.choices if isinstance(c, str)]
            best = closest(m.group(1), choices)
            if best is not None:
                return re.sub(r" \(choose from .*\)$", "", message) + f"; did you mean {best!r}?"
            return message
        if message.startswith("unrecognized arguments: "):
            options = self._option_names()
            hints = []
            for word in message.split(": ", 1)[1].split():
                best = closest(word.split("=", 1)[0], options) if word.startswith("-") else None
                if best is not None:
                    hints.append(f"{best!r} instead of {word!r}")
            if hints:
                return f"{message}; did you mean " + ", ".join(hints) + "?"
        return message

    def _option_names(self) -> list[str]:
        """This parser's options and those of the (sub)command named in ``argv``."""
        names = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                command = next((w for w in self.argv if w in action.choices), None)
                if command is not None:
                    sub = action.choices[command]
                    names += [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
        return names


class _CommandParser(_Parser):
    """Parser for subcommands: adds the common options unless ``stub=True``."""

    def __init__(self, *args: Any, stub: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("conflict_handler", "resolve")  # an extension may redefine a common option
        if stub:
            kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        if not stub:
            _add_common(self, suppress=True)


def _command(
    sub: Any, name: str, help: str, func: Handler, *, epilog: str | None = None, usage: str | None = None
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog, usage=usage
    )
    p.set_defaults(func=func)
    return p


def build_parser(load: Iterable[str] = ()) -> argparse.ArgumentParser:
    """The full parser; extension commands whose target is in ``load`` are added for real, others as stubs."""
    from ._version import __version__

    parser = _Parser(
        prog="modelreg",
        description="modelreg: version control for trained models. "
        "References: NAME (latest), NAME/3, NAME@production (stage), NAME@champion (alias).",
        epilog="Run `modelreg COMMAND --help` for a command's options. "
        "Exit codes: 0 ok, 1 failed, 2 invalid input or usage, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"modelreg {__version__}")
    _add_common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)
    for add in _BUILTINS:
        add(sub)
    targets = set(load)
    loaded: set[str] = set()
    for name, help_text, target in EXTENSIONS:
        if target in targets:
            if target not in loaded:
                _import_hook(target)(sub)
                loaded.add(target)
        else:
            sub.add_parser(name, help=help_text, stub=True).set_defaults(_extension=target)
    return parser


def _import_hook(target: str) -> Callable[[Any], None]:
    import importlib

    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    hook: Callable[[Any], None] = getattr(module, func_name or "add_commands")
    return hook


_COMMON_DESTS = ("registry", "actor", "json", "progress")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    if isinstance(parser, _Parser):
        parser.argv = argv
    probe, _ = parser.parse_known_args(argv)
    target = getattr(probe, "_extension", None)
    if target is not None:
        parser = build_parser(load=[target])
        if isinstance(parser, _Parser):
            parser.argv = argv
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_USAGE)
    for dest in _COMMON_DESTS:
        # an extension that redefines a common option resets it to its own default;
        # keep the value given before the command name (the probe saw only those)
        given = getattr(probe, dest, None)
        if given not in (None, False) and getattr(args, dest, None) in (None, False):
            setattr(args, dest, given)
    return args


def _call(func: Callable[..., Any], ctx: Context, args: argparse.Namespace) -> Any:
    """``func(ctx, args)``, or ``func(args)`` for a handler that takes one positional parameter."""
    import inspect

    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return func(ctx, args)
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    has_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    return func(args) if len(positional) == 1 and not has_varargs else func(ctx, args)


# -- commands --------------------------------------------------------------------------------------
def _version_rows(versions: Iterable[Any], with_name: bool = False) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "REF" if with_name else "VERSION",
        "STAGE",
        "ALIASES",
        "SIZE",
        "DIGEST",
        "CREATED (UTC)",
        "BY",
        "METRICS",
    ]
    rows = [
        [
            mv.ref if with_name else mv.version,
            mv.stage.value,
            ",".join(mv.aliases),
            human_size(mv.size),
            _short_digest(mv.digest),
            _when(mv.created_at),
            mv.created_by,
            _compact(mv.current_metrics),
        ]
        for mv in versions
    ]
    return headers, rows


def cmd_register(ctx: Context, args: argparse.Namespace) -> None:
    lineage: dict[str, Any] = {}
    if args.run_id:
        lineage["run_id"] = args.run_id
    if args.run_url:
        lineage["run_url"] = args.run_url
    if args.dataset:
        lineage["datasets"] = [_dataset(d) for d in args.dataset]
    if args.parent:
        lineage["parents"] = list(args.parent)
    params = {k: parse_param_value(v) for k, v in _pairs(args.param, "--param", "lr=0.1").items()}
    metrics = _metrics(args.metric, "--metric")
    tags = _pairs(args.tag, "--tag", "team=fraud")
    key = None
    if args.key is not None:
        from .signing import SigningKey

        key = SigningKey.load(args.key)  # a bad key is refused before anything is registered
    mv = ctx.registry.register(
        args.name,
        args.path,
        params=params,
        metrics=metrics,
        tags=tags,
        lineage=lineage or None,
        description=args.description,
        capture=None if args.no_capture else "auto",
        format=args.format,
        progress=ctx.progress(),
        follow_symlinks=args.follow_symlinks,
        sign=args.sign and key is None,
    )
    ctx.end_progress()
    if key is not None:
        ctx.registry.sign(mv.ref, key=key, role="author")
        mv = ctx.registry.get_version(mv.ref)
    if ctx.json:
        ctx.emit(mv)
    else:
        kind = "folder" if mv.artifact.kind == "directory" else "file"
        link = f" (symlink to {mv.artifact.symlink_target!r})" if mv.artifact.symlink_target else ""
        ctx.out(f"registered {mv.ref}: {kind} {mv.artifact.name!r}{link}, {human_size(mv.size)}, {mv.digest}")


def _add_register(sub: Any) -> None:
    p = _command(
        sub,
        "register",
        "register a file or folder as the next version of a model",
        cmd_register,
        epilog="example:\n  modelreg register churn model.onnx --param lr=0.1 --metric auc=0.91 "
        "--tag team=fraud --dataset s3://data/churn.parquet@v3",
    )
    p.add_argument("name", metavar="NAME", help="model name, e.g. churn or fraud/churn")
    p.add_argument("path", metavar="PATH", help="the artifact: a file or a folder")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a parameter (repeatable); the value is parsed as JSON when it parses, else kept as a string",
    )
    p.add_argument("--metric", action="append", metavar="KEY=NUMBER", help="a metric (repeatable); finite numbers only")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag (repeatable)")
    p.add_argument("--description", metavar="TEXT", help="a description of this version")
    p.add_argument("--run-id", metavar="ID", help="experiment-tracker run id")
    p.add_argument("--run-url", metavar="URL", help="experiment-tracker run URL")
    p.add_argument(
        "--dataset",
        action="append",
        metavar="URI[@VERSION]",
        help="a dataset used (repeatable); @sha256:<hex> records a digest",
    )
    p.add_argument("--parent", action="append", metavar="REF", help="a parent model version, e.g. churn/2 (repeatable)")
    p.add_argument("--format", metavar="FORMAT", help="artifact format hint, e.g. onnx, pytorch")
    p.add_argument(
        "--no-capture", action="store_true", help="do not record the git state and Python environment automatically"
    )
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="store the content of symlinks in the folder that point outside it (refused by default)",
    )
    p.add_argument(
        "--sign",
        action="store_true",
        help="sign the new version (role author) with $MODELREG_SIGNING_KEY_FILE, $MODELREG_SIGNING_KEY or --key",
    )
    p.add_argument(
        "--key",
        "--signing-key",
        dest="key",
        metavar="PEM",
        help="the EC private key file to sign the new version with (implies --sign)",
    )


def cmd_list(ctx: Context, args: argparse.Namespace) -> None:
    models = ctx.registry.list_models()
    if ctx.json:
        ctx.emit(models)
        return
    if not models:
        ctx.note("no models yet; register one with `modelreg register NAME PATH`")
        return
    rows = []
    for m in models:
        stages = " ".join(
            f"{s}:{','.join(map(str, vs))}"
            for s, vs in sorted(m.stages.items())
            if vs and s in ("production", "staging")
        )
        aliases = " ".join(f"{a}:{v}" for a, v in sorted(m.aliases.items()))
        rows.append([m.name, m.version_count, m.latest_version, stages, aliases, m.owner, _when(m.updated_at)])
    ctx.table(["NAME", "VERSIONS", "LATEST", "STAGES", "ALIASES", "OWNER", "UPDATED (UTC)"], rows)


def _add_list(sub: Any) -> None:
    _command(sub, "list", "list models", cmd_list)


def cmd_versions(ctx: Context, args: argparse.Namespace) -> None:
    versions = ctx.registry.list_versions(args.name, stage=args.stage)
    if ctx.json:
        ctx.emit(versions)
        return
    if not versions:
        ctx.note(f"no versions of {args.name!r}" + (f" in {args.stage}" if args.stage else ""))
        return
    ctx.table(*_version_rows(versions))


def _add_versions(sub: Any) -> None:
    p = _command(sub, "versions", "list the versions of a model", cmd_versions)
    p.add_argument("name", metavar="NAME", help="model name")
    p.add_argument("--stage", metavar="STAGE", help="only versions in this stage")


def _show_lines(mv: Any) -> list[str]:
    art = mv.artifact
    kind = "folder" if art.kind == "directory" else "file"
    lines = [mv.ref]
    lines += _kv(
        [
            ("stage", mv.stage.value),
            ("aliases", ", ".join(mv.aliases)),
            ("created", f"{_when(mv.created_at)} UTC by {mv.created_by}"),
            ("updated", f"{_when(mv.updated_at)} UTC" if mv.updated_at else None),
            ("description", mv.description),
            ("artifact", f"{kind} {art.name!r}, {human_size(art.size)} ({art.size} bytes), {len(art.files)} file(s)"),
            ("format", art.format),
            ("digest", art.digest),
        ]
    )
    sections: list[tuple[str, list[str]]] = [
        ("params", _kv((k, _value(v)) for k, v in mv.params.items())),
        ("metrics", _kv((k, _value(v)) for k, v in mv.metrics.items())),
        ("logged metrics (latest values)", _kv((k, _value(v)) for k, v in mv.logged_metrics.items())),
        ("tags", _kv((k, v) for k, v in mv.tags.items())),
    ]
    lin = mv.lineage
    pairs: list[tuple[str, Any]] = [("run id", lin.run_id), ("run url", lin.run_url)]
    if lin.code is not None:
        c = lin.code
        extra = ", ".join(
            x
            for x in (
                c.repo,
                f"branch {c.branch}" if c.branch else None,
                {True: "dirty", False: "clean", None: None}[c.dirty],
            )
            if x
        )
        pairs.append(("code", f"{c.commit or '-'}" + (f" ({extra})" if extra else "")))
    for d in lin.datasets:
        ident = f" version {d.version}" if d.version else (f" {d.digest}" if d.digest else "")
        pairs.append(("dataset", f"{d.uri}{ident}" + (f" [{d.role}]" if d.role else "")))
    for parent in lin.parents:
        pairs.append(("parent", parent))
    if lin.environment is not None:
        env = lin.environment
        pairs.append(("environment", f"python {env.python or '?'} on {env.platform or '?'}"))
        pairs.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(env.packages.items()))))
    for k, v in lin.extra.items():
        pairs.append((k, _value(v)))
    sections.append(("lineage", _kv(pairs)))
    if mv.model is not None:
        sections.append(("model object", _model_lines(mv.model)))
    files = format_table(["PATH", "SIZE", "DIGEST"], [[f.path, human_size(f.size), f.digest] for f in art.files])
    sections.append(("files", ["  " + ln for ln in files.splitlines()]))
    for title, body in sections:
        if body:
            lines += ["", title, *body]
    return lines


def _spec(col: Any) -> str:
    shape = "" if col.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in col.shape) + "]"
    return f"{col.name or '(tensor)'}: {col.dtype}{shape}"


def _model_lines(info: Any) -> list[str]:
    """The ``model object`` section of ``show``: flavor, format, safety, libraries, signature."""
    pairs: list[tuple[str, Any]] = [
        ("flavor", info.flavor),
        (
            "format",
            info.format + (" (loading runs code: needs --allow-unsafe / allow_unsafe=True)" if info.unsafe else ""),
        ),
        ("path", info.path),
        ("class", info.object_class),
        ("libraries", ", ".join(f"{k} {v}" for k, v in sorted(info.libraries.items()))),
    ]
    sig = info.signature
    if sig is not None:
        pairs.append(("inputs", f"({sig.kind}) " + ", ".join(_spec(c) for c in sig.inputs)))
        if sig.outputs:
            pairs.append(("outputs", ", ".join(_spec(c) for c in sig.outputs)))
    return _kv(pairs)


def cmd_show(ctx: Context, args: argparse.Namespace) -> None:
    mv = ctx.registry.get_version(args.ref)
    if ctx.json:
        ctx.emit(mv)
    else:
        ctx.out("\n".join(_show_lines(mv)))


def _add_show(sub: Any) -> None:
    p = _command(sub, "show", "show a version in full: params, metrics, tags, lineage, files, aliases", cmd_show)
    p.add_argument("ref", metavar="REF", help=REF_HELP)


def _holder(reg: Any, name: str, stage: Any) -> Any:
    from .errors import NotFoundError

    try:
        return reg.get_version(name, stage=stage)
    except NotFoundError:
        return None


def _target_stage(ref: str, text: str) -> Any:
    """The STAGE argument of ``transition``; a number there means the stage was left out."""
    from .validation import parse_stage

    if text.strip().isdigit():
        from .refs import parse_ref

        name = parse_ref(ref).name  # churn/3 3 -> churn
        raise InvalidInputError(
            f"{text!r} is not a stage: the target stage is missing; use `modelreg transition {name} {text} STAGE` "
            f"or `modelreg transition {name}/{text} STAGE` with STAGE one of experimental, staging, production, "
            "archived"
        )
    return parse_stage(text)


def cmd_transition(ctx: Context, args: argparse.Namespace) -> None:
    from .refs import parse_ref
    from .validation import parse_stage

    if args.stage is None:
        version, target = None, _target_stage(args.ref, args.first)
    else:
        version, target = args.first, parse_stage(args.stage)
    reg = ctx.registry
    ref = parse_ref(args.ref)
    before = reg.get_version(args.ref, version)
    displaced = _holder(reg, ref.name, target) if target in reg.rules.exclusive else None
    mv = reg.transition(
        args.ref, version, target, comment=args.comment, strict=args.strict, sign=args.sign, key=args.key
    )
    if before.stage == target == mv.stage:
        ctx.note(f"{mv.ref} is already in {target.value}; nothing to do")
    if ctx.json:
        ctx.emit(mv)
        return
    if before.stage == target == mv.stage:
        return
    if displaced is not None and displaced.version != mv.version:
        after = reg.get_version(displaced.ref)
        ctx.out(f"{after.ref}: {displaced.stage.value} -> {after.stage.value}")
    ctx.out(f"{mv.ref}: {before.stage.value} -> {mv.stage.value}")


def _add_transition(sub: Any) -> None:
    p = _command(
        sub,
        "transition",
        "move a version to another stage",
        cmd_transition,
        usage="modelreg transition [options] REF STAGE\n       modelreg transition [options] NAME VERSION STAGE",
        epilog="stages: experimental, staging, production, archived. Promoting to production moves the\n"
        "previous production version to archived.\n\nexamples:\n"
        "  modelreg transition churn/3 production --comment 'beats v2'\n"
        "  modelreg transition churn 3 staging",
    )
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("first", metavar="STAGE", help="experimental, staging, production or archived")
    p.add_argument("stage", nargs="?", metavar="STAGE", help=argparse.SUPPRESS)
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1) when the version is already in STAGE (default: say so on stderr, exit 0)",
    )
    p.add_argument(
        "--sign",
        action="store_true",
        help="sign the decision (version, digest, stages, actor, time) with $MODELREG_SIGNING_KEY_FILE or --key",
    )
    p.add_argument("--key", metavar="PEM", help="the private key to sign the transition with (implies --sign)")


def cmd_rollback(ctx: Context, args: argparse.Namespace) -> None:
    from .validation import parse_stage

    reg = ctx.registry
    stage = parse_stage(args.stage)
    current = _holder(reg, args.name, stage)
    mv = reg.rollback(args.name, stage=stage, comment=args.comment)
    if ctx.json:
        ctx.emit(mv)
        return
    if current is not None and current.version != mv.version:
        after = reg.get_version(current.ref)
        ctx.out(f"{after.ref}: {stage.value} -> {after.stage.value}")
    ctx.out(f"{mv.ref}: back in {mv.stage.value}")


def _add_rollback(sub: Any) -> None:
    p = _command(sub, "rollback", "bring back the previous holder of a stage (production by default)", cmd_rollback)
    p.add_argument("name", metavar="NAME", help="model name")
    p.add_argument(
        "--stage", default="production", metavar="STAGE", help="the stage to roll back (default: production)"
    )
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")


def cmd_alias(ctx: Context, args: argparse.Namespace) -> None:
    from .refs import parse_ref

    reg = ctx.registry
    ref = parse_ref(args.ref)
    if args.alias is None:
        if args.delete:
            raise InvalidInputError("--delete needs the alias to remove: modelreg alias NAME ALIAS --delete")
        aliases = reg.get_model(ref.name).aliases
        if ctx.json:
            ctx.emit(aliases)
        elif aliases:
            ctx.table(["ALIAS", "VERSION"], sorted(aliases.items()))
        else:
            ctx.note(f"{ref.name!r} has no aliases; set one with `modelreg alias {ref.name} ALIAS VERSION`")
        return
    if args.delete:
        if args.version is not None or str(ref) != ref.name:
            raise InvalidInputError("use `modelreg alias NAME ALIAS --delete` (no version) to remove an alias")
        was = reg.delete_alias(ref.name, args.alias, comment=args.comment)
        if ctx.json:
            ctx.emit({"name": ref.name, "alias": args.alias, "deleted": True, "version": was.version})
        else:
            ctx.out(f"removed alias {ref.name}@{args.alias} (was {was.ref})")
        return
    if args.version is not None:
        mv = reg.set_alias(args.ref, args.alias, args.version, comment=args.comment)
    elif str(ref) != ref.name:
        target = reg.get_version(args.ref)
        mv = reg.set_alias(target.name, args.alias, target.version, comment=args.comment)
    else:
        raise InvalidInputError(
            f"say which version {args.alias!r} should point at: "
            f"`modelreg alias {ref.name} {args.alias} VERSION` or `modelreg alias {ref.name}/VERSION {args.alias}`"
        )
    if ctx.json:
        ctx.emit(mv)
    else:
        ctx.out(f"{mv.name}@{args.alias} -> {mv.ref}")


def _add_alias(sub: Any) -> None:
    p = _command(
        sub,
        "alias",
        "set, remove or list aliases (named pointers such as champion)",
        cmd_alias,
        usage="modelreg alias [options] NAME ALIAS VERSION\n"
        "       modelreg alias [options] REF ALIAS\n"
        "       modelreg alias [options] NAME ALIAS --delete\n"
        "       modelreg alias [options] NAME",
        epilog="examples:\n  modelreg alias churn champion 3\n  modelreg alias churn@production champion\n"
        "  modelreg alias churn champion --delete\n  modelreg alias churn",
    )
    p.add_argument("ref", metavar="NAME", help="a model name, or a version reference such as churn/3")
    p.add_argument("alias", nargs="?", metavar="ALIAS", help="e.g. champion (not a stage name)")
    p.add_argument("version", nargs="?", metavar="VERSION", help="the version number the alias points at")
    p.add_argument("--delete", action="store_true", help="remove the alias")
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")


def cmd_tag(ctx: Context, args: argparse.Namespace) -> None:
    reg = ctx.registry
    tags = _pairs(args.pairs, "tag", "team=fraud")
    if tags or args.remove:
        mv = reg.set_tags(args.ref, tags, remove=args.remove or (), comment=args.comment)
    else:
        mv = reg.get_version(args.ref)
    if ctx.json:
        ctx.emit(mv)
    elif mv.tags:
        ctx.table(["TAG", "VALUE"], sorted(mv.tags.items()))
    else:
        ctx.note(f"{mv.ref} has no tags")


def _add_tag(sub: Any) -> None:
    p = _command(
        sub,
        "tag",
        "set or remove tags of a version (without changes: print them)",
        cmd_tag,
        epilog="examples:\n  modelreg tag churn/3 team=fraud reviewed=yes\n  modelreg tag churn/3 --remove reviewed",
    )
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="tags to add or change")
    p.add_argument("--remove", action="append", metavar="KEY", help="remove this tag (repeatable)")
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")


def cmd_describe(ctx: Context, args: argparse.Namespace) -> None:
    reg = ctx.registry
    text = _read_text(args.text)
    if args.model:
        record = reg.update_model(args.ref, description=text, comment=args.comment)
        label = record.name
    else:
        record = reg.set_description(args.ref, text, comment=args.comment)
        label = record.ref
    if ctx.json:
        ctx.emit(record)
    else:
        ctx.out(f"description of {label} updated")


def _add_describe(sub: Any) -> None:
    p = _command(sub, "describe", "set the description of a version (or of a model with --model)", cmd_describe)
    p.add_argument("ref", metavar="REF", help=REF_HELP + "; a model name with --model")
    p.add_argument("text", metavar="TEXT", help="the description; - reads it from stdin")
    p.add_argument("--model", action="store_true", help="describe the model NAME instead of a version")
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")


def cmd_log_metrics(ctx: Context, args: argparse.Namespace) -> None:
    metrics = _metrics(args.pairs, "metric")
    mv = ctx.registry.log_metrics(args.ref, metrics, step=args.step, comment=args.comment)
    if ctx.json:
        ctx.emit(mv)
    else:
        ctx.out(f"logged {_compact(metrics, 200)} on {mv.ref}")


def _add_log_metrics(sub: Any) -> None:
    p = _command(
        sub,
        "log-metrics",
        "record metrics measured after registration (evaluation, monitoring)",
        cmd_log_metrics,
        epilog="example:\n  modelreg log-metrics churn@production auc_live=0.87 --step 7",
    )
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("pairs", nargs="+", metavar="KEY=NUMBER", help="metrics to record; finite numbers only")
    p.add_argument("--step", type=int, metavar="N", help="a step or sequence number (e.g. the day of monitoring)")
    p.add_argument("--comment", "-m", metavar="TEXT", help="a note (recorded in the audit trail)")


def cmd_metrics(ctx: Context, args: argparse.Namespace) -> None:
    points = ctx.registry.metric_history(args.ref, args.key)
    if ctx.json:
        ctx.emit(points)
        return
    if not points:
        ctx.note("no metrics")
        return
    ctx.table(
        ["KEY", "VALUE", "SOURCE", "STEP", "TIME (UTC)", "ACTOR"],
        [[p.key, p.value, p.source, p.step, _when(p.time), p.actor] for p in points],
    )


def _add_metrics(sub: Any) -> None:
    p = _command(sub, "metrics", "the history of a version's metrics (registered, then each logged value)", cmd_metrics)
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("--key", metavar="KEY", help="only this metric")


def cmd_download(ctx: Context, args: argparse.Namespace) -> None:
    reg = ctx.registry
    mv = reg.get_version(args.ref)
    path = reg.download(
        mv.ref,
        args.dest,
        overwrite=args.overwrite,
        progress=ctx.progress(),
        require_signature=args.require_signature or bool(args.trusted_key),
        trusted_keys=args.trusted_key or None,
    )
    ctx.end_progress()
    if ctx.json:
        ctx.emit({"ref": mv.ref, "path": str(path), "digest": mv.digest, "size": mv.size})
    else:
        ctx.out(str(path))


def _add_download(sub: Any) -> None:
    p = _command(
        sub,
        "download",
        "fetch a version's artifact (streamed and sha256-verified); prints its path",
        cmd_download,
        epilog="example:\n  modelreg download churn@production ./deploy",
    )
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("dest", nargs="?", default=".", metavar="DEST", help="folder to write into (default: .)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file or folder of the same name")
    _add_signature_options(p)


def cmd_fetch(ctx: Context, args: argparse.Namespace) -> None:
    reg = ctx.registry
    path = reg.fetch(
        args.ref,
        verify=args.verify,
        record_use=True if args.record_use else None,
        purpose=args.purpose,
        progress=ctx.progress(),
        require_signature=args.require_signature or bool(args.trusted_key),
        trusted_keys=args.trusted_key or None,
    )
    ctx.end_progress()
    if ctx.json:
        ctx.emit({"ref": args.ref, "path": str(path)})
    else:
        ctx.out(str(path))


def _add_fetch(sub: Any) -> None:
    p = _command(
        sub,
        "fetch",
        "the verified local path of a version (a read-only snapshot in the local cache); prints it",
        cmd_fetch,
        epilog='examples:\n  modelreg fetch churn@production\n  python serve.py --model "$(modelreg fetch churn/3)"',
    )
    p.add_argument("ref", metavar="REF", help=REF_HELP + "; or an artifact digest sha256:...")
    p.add_argument("--verify", action="store_true", help="re-hash a snapshot that is already on disk")
    p.add_argument("--record-use", action="store_true", help="append a usage record (who, host, purpose)")
    p.add_argument("--purpose", metavar="TEXT", help="what the version is used for, kept in the usage record")
    _add_signature_options(p)


def _add_signature_options(p: Any) -> None:
    p.add_argument(
        "--require-signature",
        action="store_true",
        help="refuse a version without a valid signature from a trusted key (--trusted-key, else "
        "$MODELREG_TRUSTED_KEYS, else your own signing key)",
    )
    p.add_argument(
        "--trusted-key",
        action="append",
        metavar="KEY",
        help="a trusted key: a fingerprint or a PEM public key file (repeatable; implies --require-signature)",
    )


def _fmt_change_value(value: Any) -> str:
    if value == "":
        return '""'
    if isinstance(value, str) and value.startswith("sha256:"):
        return _short_digest(value)
    return _cell(value)


def describe_change(ev: Any) -> str:
    """A one-line summary of an audit event's before/after."""
    before, after = ev.before or {}, ev.after or {}
    if ev.action in ("set_alias", "delete_alias"):
        alias = after.get("alias") or before.get("alias")
        return f"@{alias}: {_cell(before.get('version'))} -> {_cell(after.get('version'))}"
    if ev.action == "log_metrics":  # before: {"metrics": {...}}; in events of modelreg 0.1, the metrics themselves
        logged = before.get("metrics")
        old = logged if isinstance(logged, dict) else before
        parts = [f"{k}: {_cell(old.get(k))} -> {_cell(v)}" for k, v in (after.get("metrics") or {}).items()]
        if after.get("step") is not None:
            parts.append(f"step={after['step']}")
        return "; ".join(parts)
    if ev.action == "register" and isinstance(after.get("size"), int):
        after = {**after, "size": human_size(after["size"])}
    if set(before) == {"stage"} and set(after) == {"stage"}:
        return f"{before['stage']} -> {after['stage']}"
    parts = []
    for key in list(dict.fromkeys([*before, *after])):
        if key in before and key in after:
            if before[key] != after[key]:
                parts.append(f"{key}: {_fmt_change_value(before[key])} -> {_fmt_change_value(after[key])}")
        elif key in after:
            parts.append(f"{key}={_fmt_change_value(after[key])}")
        elif before[key] is not None:
            parts.append(f"{key}: {_fmt_change_value(before[key])} -> -")
    return "; ".join(parts)


def cmd_history(ctx: Context, args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 0:
        raise InvalidInputError(f"--limit must be 0 or more, got {args.limit}")
    if args.usage and args.ref is None:
        raise InvalidInputError("--usage needs a model: modelreg history NAME --usage")
    events = ctx.registry.history(args.ref, usage=args.usage)
    if args.limit is not None:
        events = events[-args.limit :] if args.limit else []
    if ctx.json:
        ctx.emit(events)
        return
    if not events:
        ctx.note("no events")
        return
    many = args.ref is None
    headers = (["MODEL"] if many else []) + ["SEQ", "TIME (UTC)", "ACTOR", "ACTION", "VERSION", "CHANGE", "COMMENT"]
    rows = [
        ([e.model] if many else [])
        + (
            [
                e.seq,
                _when(e.time),
                e.actor,
                e.action,
                e.version,
                _clip(describe_change(e), 70),
                _clip(e.comment or "", 50),
            ]
            if hasattr(e, "seq")
            else [  # a usage record (--usage): not part of the audit chain, no sequence number
                "-",
                _when(e.time),
                e.actor,
                f"used ({e.action})",
                e.version,
                _clip(f"{e.host} pid {e.pid} {_short_digest(e.digest)}", 70),
                _clip(e.purpose or "", 50),
            ]
        )
        for e in events
    ]
    ctx.table(headers, rows)


def _add_history(sub: Any) -> None:
    p = _command(
        sub,
        "history",
        "the audit trail, oldest first: of everything, a model, or one version",
        cmd_history,
        epilog="examples:\n  modelreg history churn\n  modelreg history churn/3\n  modelreg history --limit 20",
    )
    p.add_argument("ref", nargs="?", metavar="NAME|REF", help="a model (churn) or a version (churn/3)")
    p.add_argument("--limit", type=int, metavar="N", help="only the last N events")
    p.add_argument(
        "--usage", action="store_true", help="also show the usage log: who fetched or loaded which version, where"
    )


def cmd_search(ctx: Context, args: argparse.Namespace) -> None:
    import warnings

    from .query import SearchWarning

    order = ", ".join(args.order_by) if args.order_by else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SearchWarning)
        versions = ctx.registry.search(args.query, order_by=order, limit=args.limit)
    for w in caught:  # a key no version has (a typo?): said on stderr, with the closest keys
        if issubclass(w.category, SearchWarning):
            ctx.note(f"warning: {w.message}")
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if ctx.json:
        ctx.emit(versions)
        return
    if not versions:
        ctx.note("no matching versions")
        return
    ctx.table(*_version_rows(versions, with_name=True))


def _add_search(sub: Any) -> None:
    p = _command(
        sub,
        "search",
        "search versions across models",
        cmd_search,
        epilog="query fields: name, version, stage, alias, created_by, created_at, description,\n"
        "metrics.<key>, params.<key>, tags.<key>, lineage.<path>; operators = != < <= > >= like in;\n"
        "clauses joined by `and`.\n\nexample:\n"
        "  modelreg search \"metrics.auc > 0.9 and tags.team = 'fraud'\" --order-by 'metrics.auc desc' --limit 5",
    )
    p.add_argument("query", nargs="?", metavar="QUERY", help="e.g. \"metrics.auc > 0.9 and stage = 'production'\"")
    p.add_argument("--order-by", action="append", metavar="FIELD [asc|desc]", help="sort key (repeatable)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N results")


def cmd_compare(ctx: Context, args: argparse.Namespace) -> None:
    cmp = ctx.registry.compare(args.a, args.b)
    if ctx.json:
        ctx.emit(cmp)
        return
    ctx.out(f"{cmp.a} vs {cmp.b}: " + ("same artifact" if cmp.same_artifact else "different artifacts"))
    for title, diff in (("params", cmp.params), ("metrics", cmp.metrics), ("tags", cmp.tags), ("lineage", cmp.lineage)):
        if diff:
            ctx.out(f"\n{title}")
            body = format_table(
                ["KEY", cmp.a, cmp.b],
                [[k, _clip(_cell(d.get("a")), 50), _clip(_cell(d.get("b")), 50)] for k, d in diff.items()],
            )
            ctx.out("\n".join("  " + ln for ln in body.splitlines()))
    files = (
        [("added", p) for p in cmp.files_added]
        + [("removed", p) for p in cmp.files_removed]
        + [("changed", p) for p in cmp.files_changed]
    )
    if files:
        ctx.out("\nfiles")
        ctx.out("\n".join(_kv(files)))
    if not (cmp.params or cmp.metrics or cmp.tags or cmp.lineage or files) and cmp.same_artifact:
        ctx.out("no differences")


def _add_compare(sub: Any) -> None:
    p = _command(
        sub,
        "compare",
        "differences between two versions: params, metrics, tags, lineage, files",
        cmd_compare,
        epilog="example:\n  modelreg compare churn/2 churn@production",
    )
    p.add_argument("a", metavar="REF_A")
    p.add_argument("b", metavar="REF_B")


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    report = ctx.registry.verify(args.name, blobs=not args.no_blobs, progress=ctx.progress())
    ctx.end_progress()
    if ctx.json:
        ctx.emit(report)
    else:
        what = (
            f"{report.models_checked} model(s), {report.events_checked} audit event(s), "
            f"{report.blobs_checked} blob(s) ({human_size(report.bytes_checked)})"
        )
        if report.ok:
            ctx.out(f"ok: checked {what}")
        else:
            ctx.out(f"FAILED: {len(report.problems)} problem(s) in {what}")
            for p in report.problems:
                ctx.out(f"  [{p.kind}] {p.detail}")
    if not report.ok:
        ctx.note(f"error: verification found {len(report.problems)} problem(s)")
        return EXIT_FAILURE
    return EXIT_OK


def _add_verify(sub: Any) -> None:
    p = _command(sub, "verify", "re-hash stored blobs and check the audit chains; exit 1 on any problem", cmd_verify)
    p.add_argument("name", nargs="?", metavar="NAME", help="only this model")
    p.add_argument("--no-blobs", action="store_true", help="check the audit chains and manifests only (fast)")


def cmd_gc(ctx: Context, args: argparse.Namespace) -> None:
    grace = parse_duration(args.grace)
    report = ctx.registry.gc(grace=grace, dry_run=args.dry_run)
    if report.partials_error:  # the blobs were collected; say what could not be cleaned (exit status 0)
        ctx.note(f"warning: could not clean up interrupted uploads: {report.partials_error}")
    if ctx.json:
        ctx.emit(report)
        return
    verb = "would remove" if report.dry_run else "removed"
    ctx.out(
        f"{verb} {len(report.removed)} unreferenced blob(s), {human_size(report.bytes_freed)}; "
        f"kept {report.kept_referenced} in use and {report.kept_recent} newer than {format_duration(grace)}"
    )
    if report.dry_run:
        for digest in report.removed:
            ctx.out(f"  {digest}")
    else:
        ctx.out(f"removed {report.partials_removed} interrupted upload(s), {human_size(report.partial_bytes_freed)}")


def _add_gc(sub: Any) -> None:
    p = _command(
        sub,
        "gc",
        "delete blobs no version uses (after purges or interrupted registrations)",
        cmd_gc,
        epilog="example:\n  modelreg gc --grace 30m --dry-run",
    )
    p.add_argument(
        "--grace",
        default="1h",
        metavar="DURATION",
        help="keep unreferenced blobs younger than this, e.g. 30m, 1h, 2d, 0s (default: 1h); "
        "protects registrations in flight",
    )
    p.add_argument("--dry-run", action="store_true", help="only report what would be removed")


def cmd_purge(ctx: Context, args: argparse.Namespace) -> None:
    ctx.registry.purge(args.ref, comment=args.comment)
    if ctx.json:
        ctx.emit({"purged": args.ref})
    else:
        ctx.out(f"purged {args.ref}; its number stays reserved, run `modelreg gc` to free blobs no other version uses")


def _add_purge(sub: Any) -> None:
    p = _command(
        sub,
        "purge",
        "hard delete a version's record (its number stays reserved; audited)",
        cmd_purge,
        epilog="example:\n  modelreg purge churn/3 --comment 'trained on leaked data'",
    )
    p.add_argument("ref", metavar="NAME/VERSION", help="an explicit version, e.g. churn/3")
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")


def cmd_archive(ctx: Context, args: argparse.Namespace) -> None:
    reg = ctx.registry
    before = reg.get_version(args.ref)
    mv = reg.archive(before.ref, comment=args.comment, strict=args.strict)
    already = before.stage == mv.stage
    if already:
        ctx.note(f"{mv.ref} is already in {mv.stage.value}; nothing to do")
    if ctx.json:
        ctx.emit(mv)
    elif not already:
        ctx.out(f"{mv.ref}: {before.stage.value} -> {mv.stage.value}")


def _add_archive(sub: Any) -> None:
    p = _command(
        sub, "archive", "soft delete: move a version to archived (still downloadable, reversible)", cmd_archive
    )
    p.add_argument("ref", metavar="REF", help=REF_HELP)
    p.add_argument("--comment", "-m", metavar="TEXT", help="why (recorded in the audit trail)")
    p.add_argument("--strict", action="store_true", help="fail (exit 1) when the version is archived already")


def cmd_cache_info(ctx: Context, args: argparse.Namespace) -> None:
    from .cache import BlobCache

    got = BlobCache().info()
    if getattr(args, "json", False):
        ctx.emit({"path": got.path, "blobs": got.blobs, "bytes": got.bytes})
    else:
        ctx.out(f"cache: {got.path}\nblobs: {got.blobs}\nsize:  {human_size(got.bytes)} ({got.bytes} bytes)")


def cmd_cache_clear(ctx: Context, args: argparse.Namespace) -> None:
    from .cache import BlobCache

    older = parse_duration(args.older_than).total_seconds() if getattr(args, "older_than", None) else None
    got = BlobCache().clear(older_than=older)
    if getattr(args, "json", False):
        ctx.emit({"path": got.path, "removed": got.blobs, "bytes_freed": got.bytes})
    else:
        ctx.out(f"removed {got.blobs} blob(s), freed {human_size(got.bytes)} from {got.path}")


def _add_cache(sub: Any) -> None:
    p = sub.add_parser(
        "cache",
        help="show or clear the local download cache",
        description="The local cache of downloaded blobs ($MODELREG_CACHE_DIR, else ~/.cache/modelreg).",
    )
    actions = p.add_subparsers(dest="cache_command", metavar="ACTION")
    info = actions.add_parser("info", help="show the cache location, number of blobs and total size")
    info.set_defaults(func=cmd_cache_info)
    clear = actions.add_parser("clear", help="delete cached blobs (downloads fetch them again)")
    clear.add_argument(
        "--older-than", metavar="DURATION", help="only blobs not used for this long, e.g. 30d or 12h (default: all)"
    )
    clear.set_defaults(func=cmd_cache_clear)
    for q in (info, clear):
        q.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    p.set_defaults(func=cmd_cache_info)


def cmd_copy(ctx: Context, args: argparse.Namespace) -> int:
    from .registry import Registry

    with Registry(args.src) as src, Registry(args.dst) as dst:
        report = src.copy_to(dst, models=args.model, verify=not args.no_verify, note=ctx.note)
    if ctx.json:
        ctx.emit(
            {
                "models": report.models,
                "versions": report.versions,
                "events_copied": report.events_copied,
                "events_already_there": report.events_already_there,
                "blobs_copied": report.blobs_copied,
                "bytes_copied": report.bytes_copied,
                "blobs_already_there": report.blobs_already_there,
                "verified": report.verified,
                "problems": report.problems,
            }
        )
    else:
        ctx.out(
            f"copied {len(report.models)} models, {report.versions} versions: {report.events_copied} events "
            f"({report.events_already_there} already there), {report.blobs_copied} blobs "
            f"({report.bytes_copied} bytes; {report.blobs_already_there} already there)"
        )
        if report.verified:
            ctx.out("verified: " + ("ok" if not report.problems else f"{len(report.problems)} problems"))
        for problem in report.problems:
            ctx.out(f"  {problem}")
    return 1 if report.problems else 0


def _add_copy(sub: Any) -> None:
    p = sub.add_parser(
        "copy",
        help="copy models, versions, blobs and history into another registry",
        description="Copy every model, version, blob, stage, alias and the audit history from SRC into DST "
        "(e.g. a local registry into a bucket). Safe to rerun: continues where it stopped; verified at the end.",
        epilog="example:\n  modelreg copy ./models s3://team-bucket/registry",
    )
    p.add_argument("src", metavar="SRC", help="source registry (folder or URL)")
    p.add_argument("dst", metavar="DST", help="destination registry (folder or URL)")
    p.add_argument("--model", action="append", metavar="NAME", help="copy only this model (repeatable)")
    p.add_argument("--no-verify", action="store_true", help="skip the final comparison and blob re-hash")
    p.set_defaults(func=cmd_copy)


_STATUS = {"ok": "ok", "info": "--", "warn": "WARN", "fail": "FAIL"}


def cmd_doctor(ctx: Context, args: argparse.Namespace) -> int:
    from .doctor import diagnose

    checks = diagnose(getattr(args, "registry", None), timeout=args.timeout)
    failed = [c for c in checks if c.status == "fail"]
    if ctx.json:
        ctx.emit({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        head = [c for c in checks if c.name in ("modelreg", "registry")]
        for c in head:
            ctx.out(c.detail if c.name == "modelreg" else f"{c.name}: {c.detail}")
        rest = [c for c in checks if c not in head]
        width = max((len(c.name) for c in rest), default=0)
        ctx.out("")
        for c in rest:
            ctx.out(f"  {_STATUS[c.status]:<4}  {c.name.ljust(width)}  {c.detail}")
            if c.fix and c.status != "ok":
                ctx.out(f"  {'':<4}  {'':<{width}}  fix: {c.fix}")
        warned = sum(c.status == "warn" for c in checks)
        ctx.out("")
        if failed:
            ctx.out(f"{len(failed)} problem(s) to fix" + (f", {warned} warning(s)" if warned else ""))
        else:
            ctx.out("no problems found" + (f" ({warned} warning(s))" if warned else ""))
    return EXIT_FAILURE if failed else EXIT_OK


def cmd_completion(ctx: Context, args: argparse.Namespace) -> None:
    from .completion import script

    ctx.out(script(args.shell).rstrip("\n"))


def _add_completion(sub: Any) -> None:
    p = _command(
        sub,
        "completion",
        "print the shell completion script for bash, zsh or fish",
        cmd_completion,
        epilog='load it:\n  eval "$(modelreg completion bash)"     # in ~/.bashrc\n'
        '  eval "$(modelreg completion zsh)"      # in ~/.zshrc, after compinit\n'
        "  modelreg completion fish | source      # in ~/.config/fish/config.fish",
    )
    p.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL", help="bash, zsh or fish")


def _add_doctor(sub: Any) -> None:
    p = _command(
        sub,
        "doctor",
        "check the registry location, permissions, extras, credentials and endpoints; say what to fix",
        cmd_doctor,
        epilog="exit code 1 when something is broken.\n\nexamples:\n  modelreg doctor\n"
        "  modelreg --registry s3://ml-models/registry doctor",
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="give up opening the registry after this long"
    )


def _add_trust(sub: Any) -> None:
    """sign, signatures and retention (modelreg.trust_cli)."""
    from .trust_cli import add_commands

    add_commands(sub)


_BUILTINS: list[Callable[[Any], None]] = [
    _add_register,
    _add_list,
    _add_versions,
    _add_show,
    _add_transition,
    _add_rollback,
    _add_alias,
    _add_tag,
    _add_describe,
    _add_log_metrics,
    _add_metrics,
    _add_download,
    _add_fetch,
    _add_history,
    _add_search,
    _add_compare,
    _add_verify,
    _add_gc,
    _add_purge,
    _add_archive,
    _add_trust,
    _add_cache,
    _add_copy,
    _add_doctor,
    _add_completion,
]


# -- entry point -----------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``modelreg`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    ctx: Context | None = None
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["__complete"]:  # the shell completion scripts' callback (modelreg.completion)
        from .completion import complete_command

        return complete_command(words[1:], build_parser)
    try:
        try:
            args = _parse(words)
        except SystemExit as exc:  # --help, --version, usage errors
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        ctx = Context(args)
        rc = _call(args.func, ctx, args)
        ctx.close()
        return EXIT_OK if rc is None else int(rc)
    except KeyboardInterrupt:
        _abort(ctx)
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModelregError as exc:
        _abort(ctx)
        print(f"error: {exc.render('cli')}", file=sys.stderr)  # remedies as commands and options
        return _exit_code(exc)
    except BrokenPipeError:
        # the reader of stdout went away (e.g. `modelreg history | head`); exit quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_FAILURE
    except OSError as exc:
        _abort(ctx)
        detail = exc.strerror or str(exc)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {detail}{where}", file=sys.stderr)
        return _exit_code(exc)


def _exit_code(exc: BaseException) -> int:
    """The documented exit code of an error that ends a command (see the module docstring)."""
    import errno

    from .errors import AccessDeniedError, OutOfSpaceError, StorageNotFoundError, UnreachableError

    if isinstance(exc, InvalidInputError):
        return EXIT_USAGE
    if isinstance(exc, AccessDeniedError):
        return EXIT_ACCESS_DENIED
    if isinstance(exc, StorageNotFoundError):
        return EXIT_STORAGE_NOT_FOUND
    if isinstance(exc, UnreachableError):  # BackendBusyError too: both mean "retry later"
        return EXIT_UNAVAILABLE
    if isinstance(exc, OutOfSpaceError):
        return EXIT_OUT_OF_SPACE
    if isinstance(exc, OSError):  # a local file of the user's, e.g. a download destination
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return EXIT_OUT_OF_SPACE
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return EXIT_ACCESS_DENIED
    return EXIT_FAILURE


def _abort(ctx: Context | None) -> None:
    if ctx is not None:
        try:
            ctx.close()
        except Exception:
            pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
