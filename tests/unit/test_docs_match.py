"""The user docs (README.md, docs/*.md) promise what the code does: every setting, command,
option, route and metric is documented, and everything the docs name exists.

Each test reads the names from the code (the settings classes, the Click tree, the OpenAPI
document, the metric declarations), never from a list kept here, so a setting or a route added
in the code fails until the docs describe it. The tests compare names, environment variables
and defaults, not prose, and every TOML block of the docs loads as a settings file.
(tests/unit/test_config.py checks that misspelt settings are refused.)
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from sftphook.app import App
from sftphook.cli import app as cli_app
from sftphook.config import Settings
from sftphook.web.sessions import COOKIE_NAME

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SOURCE = ROOT / "src" / "sftphook"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
ENV_PREFIX = str(Settings.model_config.get("env_prefix"))  # SFTPHOOK_
ENV_NESTING = str(Settings.model_config.get("env_nested_delimiter"))  # __


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


# --- Markdown ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    page: Path
    number: int
    text: str
    block: str | None  # the fenced block's language ("" when it names none), None outside

    def __str__(self) -> str:
        return f"{_name(self.page)}:{self.number}"


FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")


def lines(page: Path) -> Iterator[Line]:
    fence: str | None = None
    language = ""
    for number, text in enumerate(page.read_text().splitlines(), 1):
        opened = FENCE.match(text)
        if fence is None and opened:
            fence, language = opened.group(1), opened.group(2).lower()
            continue
        if fence is not None and re.fullmatch(r"\s*(```+|~~~+)\s*", text):
            fence = None
            continue
        yield Line(page, number, text, language if fence is not None else None)


def prose(page: Path) -> Iterator[Line]:
    return (line for line in lines(page) if line.block is None)


def code_spans(text: str) -> list[str]:
    return re.findall(r"(?<!`)`([^`]+)`(?!`)", text)


def table_rows(page: Path) -> Iterator[tuple[str, Line, list[str]]]:
    """Each row of each table outside code blocks, with the heading it is under."""
    heading = ""
    for line in prose(page):
        if line.text.startswith("#"):
            heading = line.text.lstrip("#").strip()
        elif line.text.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line.text):
            # `\|` is a pipe inside a cell.
            cells = re.split(r"(?<!\\)\|", line.text.strip())[1:-1]
            yield heading, line, [c.strip() for c in cells]


# --- 1. Settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    group: tuple[str, ...]  # () for the top level, ("sftp",) for `[sftp]`
    name: str  # as spelt in TOML and the docs (the alias, when there is one)
    field: FieldInfo

    @property
    def env(self) -> str:
        return ENV_PREFIX + ENV_NESTING.join((*self.group, self.name)).upper()

    @property
    def dotted(self) -> str:
        return ".".join((*self.group, self.name))

    @property
    def default(self) -> Any:
        return to_jsonable_python(self.field.get_default(call_default_factory=True))


def _is_group(field: FieldInfo) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


def settings_of(model: type[BaseModel], group: tuple[str, ...] = ()) -> Iterator[Setting]:
    for attribute, field in model.model_fields.items():
        name = field.alias or attribute
        if _is_group(field):
            assert isinstance(field.annotation, type)
            yield from settings_of(field.annotation, (*group, name))
        else:
            yield Setting(group, name, field)


SETTINGS = {s.dotted: s for s in settings_of(Settings)}
GROUPS = {s.group for s in SETTINGS.values()}


def _section_group(heading: str) -> tuple[str, ...] | None:
    """`## Top level` is the top level; `` ## `[sftp]`: … `` is the group `sftp`."""
    if heading.lower() == "top level":
        return ()
    table = re.match(r"`\[([\w.]+)\]`", heading)
    return tuple(table.group(1).split(".")) if table else None


@dataclass(frozen=True)
class DocumentedSetting:
    group: tuple[str, ...]
    name: str
    env: str
    default: str
    line: Line


def documented_settings() -> list[DocumentedSetting]:
    found = []
    for heading, line, cells in table_rows(DOCS / "configuration.md"):
        group = _section_group(heading)
        if group is None or cells[0] == "setting":
            continue
        name, env = (code_spans(cell) for cell in cells[:2])
        assert len(name) == 1 and len(env) == 1, f"{line}: a setting row names one setting"
        found.append(DocumentedSetting(group, name[0], env[0], cells[2], line))
    return found


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def test_every_setting_is_documented_with_its_variable_and_default() -> None:
    documented = {(d.group, d.name): d for d in documented_settings()}
    problems = []
    for setting in SETTINGS.values():
        row = documented.get((setting.group, setting.name))
        if row is None:
            problems.append(f"{setting.dotted}: no row in docs/configuration.md")
            continue
        if row.env != setting.env:
            problems.append(f"{row.line}: {setting.dotted} is {setting.env}, not {row.env}")
        # A default the code computes (None here) is described in words; any other is
        # written first in the cell, as a literal: `2222`, `["a", "b"]`, `0.0.0.0`.
        shown = re.match(r"`([^`]*)`", row.default)
        if setting.default is None:
            if shown is not None:
                problems.append(f"{row.line}: {setting.dotted} has no default, not {row.default}")
        elif shown is None or _literal(shown.group(1)) != setting.default:
            wanted = json.dumps(setting.default)
            problems.append(f"{row.line}: {setting.dotted} defaults to {wanted}, not {row.default}")
    assert not problems, "\n".join(problems)


def test_every_documented_setting_exists() -> None:
    problems = []
    seen: set[tuple[tuple[str, ...], str]] = set()
    for row in documented_settings():
        dotted = ".".join((*row.group, row.name))
        if dotted not in SETTINGS:
            problems.append(f"{row.line}: {dotted} is no setting")
        if (row.group, row.name) in seen:
            problems.append(f"{row.line}: {dotted} is documented twice")
        seen.add((row.group, row.name))
    for heading, line, _ in table_rows(DOCS / "configuration.md"):
        if heading.startswith("`[") and _section_group(heading) not in GROUPS:
            problems.append(f"{line}: {heading} is no settings group")
    assert not problems, "\n".join(problems)


def _cli_envvars() -> set[str]:
    found = set()
    for _, command in walk_commands():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            found |= {envvar} if isinstance(envvar, str) else set(envvar or ())
    return found


def _used_outside_docs(name: str) -> bool:
    here = Path(__file__).resolve()
    for folder in ("src", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path != here and name in path.read_text():
                return True
    return False


# Variables the docs name that are not settings, and why they may.
NOT_SETTINGS = {
    # Switches of the test suite and its reports (docs/reliability.md, docs/dashboard.md).
    "SFTPHOOK_SOAK": "used",
    "SFTPHOOK_RELIABILITY_REPORT": "used",
    "SFTPHOOK_SCREENSHOTS": "used",
    # The receiver's own variable in the examples of docs/receiving.md (tests run them).
    "SFTPHOOK_WEBHOOK_SECRET": "used",
    # Misspellings that docs/configuration.md shows being ignored or refused.
    "SFTPHOOK_DATADIR": "misspelt",
    "SFTPHOOK_SFTP__PROT": "misspelt",
}


def test_every_variable_the_docs_name_is_a_setting_or_said_to_be_something_else() -> None:
    settings = {s.env for s in SETTINGS.values()}
    options = _cli_envvars()
    problems = []
    for page in PAGES:
        for line in lines(page):
            for env in re.findall(r"\bSFTPHOOK_[A-Z0-9_]*[A-Z0-9]\b", line.text):
                if env in settings or env in options:
                    continue
                why = NOT_SETTINGS.get(env)
                if why is None:
                    problems.append(f"{line}: {env} is no setting and no option's variable")
    for env, why in NOT_SETTINGS.items():
        if env in settings or env in options:
            problems.append(f"{env} is a setting now: take it out of NOT_SETTINGS")
        elif why == "used" and not _used_outside_docs(env):
            problems.append(f"{env}: nothing reads it any more")
    assert not problems, "\n".join(problems)


def _source_strings() -> set[str]:
    strings = set()
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.add(node.value)
    return strings


def test_every_setting_the_docs_name_by_group_exists() -> None:
    """`sftp.idle_timeout`, `webhooks.workers = 8`: a setting, or another name the code
    defines in that namespace (an audit action such as `sftp.login_failed`)."""
    groups = "|".join(re.escape(".".join(g)) for g in GROUPS if g)
    named = re.compile(rf"^({groups})\.([a-z_][a-z0-9_]*)(\s*=.*)?$")
    defined = _source_strings()
    problems = []
    for page in PAGES:
        for line in prose(page):
            for span in code_spans(line.text):
                match = named.match(span)
                if match is None:
                    continue
                dotted = f"{match.group(1)}.{match.group(2)}"
                if dotted not in SETTINGS and dotted not in defined:
                    problems.append(f"{line}: `{span}` names no setting")
    assert not problems, "\n".join(problems)


def toml_blocks() -> Iterator[tuple[Line, str]]:
    """Each ```toml block of the docs, with its first line."""
    for page in PAGES:
        block: list[Line] = []
        for line in [*lines(page), None]:
            if line is not None and line.block == "toml":
                if block and line.number != block[-1].number + 1:
                    yield block[0], "\n".join(b.text for b in block)
                    block = []
                block.append(line)
            elif block:
                yield block[0], "\n".join(b.text for b in block)
                block = []


def test_every_toml_block_in_the_docs_is_a_settings_file_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader copies these into sftphook.toml: each must start a server as it stands (names,
    types and values), read by the same `Settings.load` as `--config`."""
    for variable in [v for v in os.environ if v.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(variable)
    problems = []
    seen = 0
    for first, text in toml_blocks():
        seen += 1
        path = tmp_path / f"block{seen}.toml"
        path.write_text(text + "\n")
        try:
            Settings.load(path)
        except Exception as exc:  # a syntax error, an unknown name, a wrong type: all findings
            problems.append(f"{first}: {type(exc).__name__}: {exc}")
    assert seen >= 4, "the docs' TOML blocks are no longer found"
    assert not problems, "\n".join(problems)


# --- 2. The command line ------------------------------------------------------------------


def walk_commands(
    command: Any = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    command = command if command is not None else typer.main.get_command(cli_app)
    if getattr(command, "hidden", False):
        return
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk_commands(sub, (*path, name))


COMMANDS = dict(walk_commands())


def _options(command: Any) -> dict[str, Any]:
    return {
        flag: param
        for param in command.params
        if param.param_type_name == "option" and not getattr(param, "hidden", False)
        for flag in (*param.opts, *param.secondary_opts)
    }


def _is_placeholder(word: str) -> bool:
    """NAME, WEBHOOK_ID, COMMAND, `…`: a stand-in for a value the reader supplies."""
    return bool(re.fullmatch(r"[A-Z][A-Z0-9_-]*|\.\.\.|…", word)) or "…" in word


@dataclass
class Invocation:
    line: Line
    words: list[str]


SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console", "ini"}
# `sftphook`, `.venv/bin/sftphook`, `TOKEN=$(sftphook`.
COMMAND_WORD = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*=)?(?:\$\()?(?:\S*/)?sftphook")
# Inline code that runs a command: `sftphook serve`, not the From value `sftphook <a@b>`.
INLINE_COMMAND = re.compile(r"^(?:\S*/)?sftphook\s+[-\[a-z]")
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "<", "&"}


def _after_command_word(words: list[str]) -> list[str] | None:
    """The words of an `sftphook` command in a shell line, or None when it runs none."""
    start = 0
    depth = 0
    for index, word in enumerate(words):
        depth += word.count("[") - word.count("]")
        if COMMAND_WORD.fullmatch(word) and (
            # after variable assignments: `SFTPHOOK_SFTP__PORT=2022 sftphook serve`
            index == start or all(re.match(r"\w+=", w) for w in words[start:index])
        ):
            command: list[str] = []
            for rest in words[index + 1 :]:
                depth += rest.count("[") - rest.count("]")
                if rest in SHELL_OPERATORS and depth <= 0:
                    break
                if rest.endswith(")") and "(" not in rest and words[index].count("$("):
                    command.append(rest[:-1])
                    break
                command.append(rest)
            return command
        if word in SHELL_OPERATORS and depth <= 0:
            start = index + 1
    return None


def invocations(page: Path) -> Iterator[Invocation]:
    """`sftphook …` command lines in shell code blocks and in inline code.

    In a block, a line that ends in `\\` continues on the next, and so does an invocation on an
    indented line (a synopsis that wraps); ```text blocks show output and are not read. In an
    ```ini block (a systemd unit) only the `Exec…=` lines run commands."""
    pending: tuple[Line, str] | None = None
    for line in lines(page):
        if pending is not None and line.block in SHELL_LANGUAGES:
            first, text = pending
            wraps = line.text[:1].isspace() and _parse(first, text) is not None
            if text.endswith("\\") or wraps:
                pending = (first, text.rstrip("\\") + " " + line.text.strip())
                continue
        if pending is not None:
            found = _parse(*pending)
            if found is not None:
                yield found
            pending = None
        if line.block == "ini":
            command = re.match(r"^Exec\w*=(.*)", line.text)
            pending = (line, command.group(1)) if command else None
        elif line.block in SHELL_LANGUAGES:
            pending = (line, line.text)
        elif line.block is None:
            for span in filter(INLINE_COMMAND.match, code_spans(line.text)):
                found = _parse(line, span)
                if found is not None:
                    yield found
    if pending is not None:
        found = _parse(*pending)
        if found is not None:
            yield found


def _parse(line: Line, text: str) -> Invocation | None:
    try:
        words = shlex.split(text.rstrip("\\"), comments=True)
    except ValueError:
        return None
    command = _after_command_word(words)
    return None if command is None else Invocation(line, command)


def _all_invocations() -> Iterator[Invocation]:
    for page in PAGES:
        yield from invocations(page)


@dataclass
class Resolved:
    commands: set[tuple[str, ...]]
    options: set[tuple[tuple[str, ...], str]]  # (command, the option's first flag)
    problems: list[str]


def resolve(invocation: Invocation) -> Resolved:
    """Walk the words down the Click tree as Click would parse them, with the conventions of a
    synopsis: `[…]` is optional, `a|b` is a choice, `NAME` and `…` stand for values."""
    result = Resolved(set(), set(), [])
    words = [w for w in (w.strip("[]") for w in invocation.words) if w and w != "|"]
    # A choice of subcommands (`list|show|ping`) is a walk for each.
    paths: list[tuple[tuple[str, ...], list[str]]] = [((), words)]
    while paths:
        path, rest = paths.pop()
        command = COMMANDS[path]
        result.commands.add(path)
        positional = 0
        while rest:
            word, rest = rest[0], rest[1:]
            if word.startswith("-") and word != "-":
                for flag in word.split("=", 1)[0].split("/"):
                    param = _options(command).get(flag)
                    if param is None and flag != "--help":
                        result.problems.append(
                            f"{invocation.line}: `{' '.join(path)}` has no {flag}"
                        )
                    elif param is not None:
                        result.options.add((path, param.opts[0]))
                if param is not None and not param.is_flag and "=" not in word and rest:
                    rest = rest[1:]  # its value
            elif hasattr(command, "commands"):
                if _is_placeholder(word):
                    break  # `sftphook COMMAND …`: any command
                for choice in word.split("|"):
                    if (*path, choice) in COMMANDS:
                        paths.append(((*path, choice), rest))
                    else:
                        where = " ".join(("sftphook", *path))
                        result.problems.append(f"{invocation.line}: `{where}` has no {choice}")
                break
            elif not _is_placeholder(word):
                positional += 1
        else:
            arguments = [p for p in command.params if p.param_type_name == "argument"]
            variadic = any(p.nargs == -1 for p in arguments)
            if not variadic and positional > len(arguments):
                result.problems.append(
                    f"{invocation.line}: `sftphook {' '.join(path)}` takes {len(arguments)} "
                    f"argument(s), not {positional}"
                )
    return result


def test_every_command_line_in_the_docs_names_commands_and_options_that_exist() -> None:
    problems = []
    seen = 0
    for invocation in _all_invocations():
        seen += 1
        problems += resolve(invocation).problems
    assert seen > 50, "the docs' command lines are no longer found"
    assert not problems, "\n".join(problems)


def test_every_command_and_option_is_in_the_synopses_of_the_cli_page() -> None:
    commands: set[tuple[str, ...]] = set()
    options: set[tuple[tuple[str, ...], str]] = set()
    for invocation in invocations(DOCS / "cli.md"):
        resolved = resolve(invocation)
        commands |= resolved.commands
        options |= resolved.options
    problems = []
    for path, command in COMMANDS.items():
        where = " ".join(("sftphook", *path))
        # A group is shown by its commands; its own options (`--config`) are shown all the same.
        if not hasattr(command, "commands") and path not in commands:
            problems.append(f"docs/cli.md shows no `{where}`")
            continue
        for param in set(_options(command).values()):
            if (path, param.opts[0]) not in options:
                problems.append(f"docs/cli.md shows `{where}` without {param.opts[0]}")
    assert not problems, "\n".join(problems)


# --- 3. The REST API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sftphook.api.app import create_app

    data = tmp_path_factory.mktemp("data")
    api = create_app(App(Settings.load(data_dir=data)))
    spec = api.openapi()
    spec["x-served"] = [api.openapi_url, api.docs_url]
    return spec


def _segments(path: str) -> tuple[str, ...]:
    """`/webhooks/{webhook_id}`, `/webhooks/{id}`, `/webhooks/ID` and `/webhooks/$ID` alike:
    a parameter is `{}`."""
    path = path.split("?", 1)[0].split("#", 1)[0].rstrip(".,;:")
    return tuple(
        "{}" if s.startswith(("{", "$")) or _is_placeholder(s) else s
        for s in path.strip("/").split("/")
    )


def _matches(route: tuple[str, ...], named: tuple[str, ...]) -> bool:
    """A named path is a route's when each segment is the route's or a value of its parameter
    (`/users/partner-acme` is `/users/{username}`)."""
    return len(route) == len(named) and all(
        r in ("{}", n) for r, n in zip(route, named, strict=True)
    )


def _routes(spec: dict[str, Any]) -> set[tuple[str, tuple[str, ...]]]:
    return {
        (method.upper(), _segments(path))
        for path, operations in spec["paths"].items()
        for method in operations
    }


METHOD_PATH = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE)`?\s+`?(/[^\s`|)\]]*)")
API_PREFIX = _segments("/api/v1")


def _named_routes(page: Path) -> Iterator[tuple[Line, str, tuple[str, ...]]]:
    for line in lines(page):
        for method, path in METHOD_PATH.findall(line.text):
            # In a code block, `POST /hooks/sftp HTTP/1.1` is a request to a receiver.
            if line.block is None or path.startswith("/api/"):
                yield line, method, _segments(path)


def test_every_route_is_in_the_api_page(openapi: dict[str, Any]) -> None:
    named = [(m, p) for _, m, p in _named_routes(DOCS / "api.md")]
    missing = [
        f"{method} /{'/'.join(route)}"
        for method, route in sorted(_routes(openapi))
        if not any(m == method and _matches(route, p) for m, p in named)
    ]
    assert not missing, "docs/api.md does not name " + ", ".join(missing)


def test_every_route_the_docs_name_exists(openapi: dict[str, Any]) -> None:
    """`GET /api/v1/events`, or `POST /webhooks` where a page says the paths are under
    `/api/v1`; a path without a method (`/api/v1/deliveries`) begins some route's path."""
    routes = _routes(openapi)
    served = {route for _, route in routes} | {_segments(p) for p in openapi["x-served"]}
    problems = []
    for page in PAGES:
        for line, method, path in _named_routes(page):
            if not any(
                m == method and (_matches(r, path) or _matches(r, API_PREFIX + path))
                for m, r in routes
            ):
                problems.append(f"{line}: no route {method} /{'/'.join(path)}")
        for line in lines(page):
            for path in map(_segments, re.findall(r"/api/v1[^\s`'\")\]|>]*", line.text)):
                if not any(_matches(r[: len(path)], path) for r in served):
                    problems.append(f"{line}: no path /{'/'.join(path)}")
    assert not problems, "\n".join(problems)


# --- 4. Metrics ---------------------------------------------------------------------------


def declared_metrics() -> dict[str, str]:
    """Every metric family, by name, with its type: the first two arguments of each
    `family(…)` / `Family(…)` call in the package."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr).lower()
                == "family"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
            ):
                name, kind = (a.value for a in node.args[:2])  # type: ignore[attr-defined]
                found[name] = kind
    return found


METRICS = declared_metrics()


SERIES = set(METRICS) | {
    f"{name}{suffix}"
    for name, kind in METRICS.items()
    if kind == "histogram"
    for suffix in ("_bucket", "_sum", "_count")
}


def test_every_metric_the_metrics_modules_write_is_declared() -> None:
    """Every `sftphook_…` string of a metrics.py (samples, f-strings) is a declared family or
    one of a histogram's series, so that the declarations this file reads are all of them."""
    written = set()
    for path in SOURCE.rglob("metrics.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                written |= set(re.findall(r"^sftphook_[a-z0-9_]*[a-z0-9]", node.value))
    assert written, "no metrics.py writes a metric any more"
    assert written <= SERIES, sorted(written - SERIES)
    assert any(name.startswith("sftphook_sftp_") for name in METRICS)


def documented_metrics() -> dict[str, tuple[str, Line]]:
    found = {}
    for heading, line, cells in table_rows(DOCS / "webhooks.md"):
        if heading == "Monitoring" and cells[0] != "metric":
            (spelt,) = code_spans(cells[0])
            found[spelt.split("{", 1)[0]] = (cells[1], line)
    return found


def test_every_metric_is_in_the_monitoring_table_with_its_type() -> None:
    documented = documented_metrics()
    problems = []
    for name, kind in sorted(METRICS.items()):
        if name not in documented:
            problems.append(f"docs/webhooks.md#monitoring has no {name}")
        elif documented[name][0] != kind:
            problems.append(f"{documented[name][1]}: {name} is a {kind}, not {documented[name][0]}")
    assert not problems, "\n".join(problems)


def test_every_metric_the_docs_name_exists() -> None:
    """Besides the families: a histogram's `_bucket`, `_sum` and `_count` series, and a
    `prefix_*` that covers some. `sftphook_session` is the dashboard's cookie."""
    series = SERIES
    problems = []
    for page in PAGES:
        for line in lines(page):
            for name in re.findall(r"\bsftphook_[a-z0-9_]*\*?", line.text):
                if name.endswith("*"):
                    if not any(s.startswith(name[:-1]) for s in series):
                        problems.append(f"{line}: {name} matches no metric")
                elif name not in series and name != COOKIE_NAME:
                    problems.append(f"{line}: no metric {name}")
    assert not problems, "\n".join(problems)


# --- 5. Links -----------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text as shown, lower case, punctuation dropped, each
    space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = text.replace("`", "").replace("*", "").lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(page):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line.text)
        if heading:
            base = slug(heading.group(1))
            count = counts.get(base, 0)
            counts[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    found |= set(re.findall(r'<a\s+(?:name|id)="([^"]+)"', page.read_text()))
    return found


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_every_relative_link_points_at_a_file_and_heading_that_exist() -> None:
    problems = []
    checked = 0
    for page in PAGES:
        for line in prose(page):
            text = re.sub(r"`[^`]*`", "", line.text)
            targets = LINK.findall(text)
            for target in targets:
                if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
                    continue
                checked += 1
                file, _, anchor = target.partition("#")
                linked = (page.parent / file).resolve() if file else page
                if not linked.exists():
                    problems.append(f"{line}: {file} does not exist")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    problems.append(f"{line}: {_name(linked)} has no heading #{anchor}")
            # Prose that names a page, "(docs/deployment.md)", promises it too.
            for named in re.findall(r"(?<![\w/.])docs/[\w.-]+\.md\b", line.text):
                if not (ROOT / named).exists():
                    problems.append(f"{line}: {named} does not exist")
    assert checked > 30, "the docs' links are no longer found"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("`[sftp]`: the SFTP server", "sftp-the-sftp-server"),
        ("Watch webhooks arrive: `sftphook listen`", "watch-webhooks-arrive-sftphook-listen"),
        ("Per-webhook delivery tuning", "per-webhook-delivery-tuning"),
        ("What `max_file_size` does — and why", "what-max_file_size-does--and-why"),
    ],
)
def test_anchors_are_spelt_as_github_spells_them(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
