"""TOML that does not parse, explained like every other config problem: key, value, fix.

`tomllib` reports where it noticed the error, which is not always where the installer made it:
an unclosed `[` or triple-quoted string is reported lines later, or "at end of document". The
statement at fault is the one after the longest run of leading lines that still parses on its
own; its key path (with the `[table]` or `[[array]]` it sits in) and its text are what the
problem shows. Secrets on that line are masked: a config error must never print a password.
"""

from __future__ import annotations

import re
import tomllib

from gateway.core.errors import ConfigProblem
from gateway.core.redact import is_secret_key, mask_urls

MAX_DEPTH = 32  # nesting of [ ] and { } a config may use; deeper is refused before parsing

_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")

# What fixes each tomllib complaint (matched on the start of its message).
_FIXES = (
    (
        "Illegal character '\\n'",
        'the closing " on the same line (use """ ... """ for text over several lines)',
    ),
    ("Unterminated string", 'the closing quote (" or """) of this string'),
    ("Unclosed array", "a closing ] after the last item"),
    ("Unclosed inline table", "a closing } on the same line (an inline table { ... } fits on one line)"),
    ("Expected '=' after a key", "key = value"),
    ("Cannot overwrite a value", "each key once per table (use [[name]] for a list of tables)"),
    ("Cannot declare", "each [table] once (use [[name]] for a list of tables)"),
    ("Invalid value", 'a value: "text" in quotes, a number, true or false, [a, list] or { a = table }'),
    ("Expected ']' at the end of a table", "[name] or [[name]]"),
    ("Expected newline or end of document", "one key = value per line (# starts a comment)"),
    ("Unescaped '\\'", "'single quotes' for paths with backslashes, or \\\\ inside double quotes"),
    ("Invalid statement", "key = value, [table] or [[array of tables]]"),
)


def mask_secrets(line: str) -> str:
    """The line with a URL's password and the value of a secret-looking key replaced by ***."""
    line = mask_urls(line)
    key = _KEY.match(line)
    if key and is_secret_key(key.group(1).strip().strip("\"'")):
        return line[: key.end()] + " ***"
    return line


def _parses(lines: list[str]) -> bool:
    try:
        tomllib.loads("\n".join(lines))
    except tomllib.TOMLDecodeError:
        return False
    return True


def _statement_start(lines: list[str], reported: int) -> int:
    """0-based index of the line where the faulty statement begins: the first line (not blank, not a
    comment) after the longest run of leading lines, ending before the reported line, that parses."""
    k = min(max(reported, 1), len(lines))
    p = k - 1
    while p > 0 and not _parses(lines[:p]):
        p -= 1
    while p < k - 1 and (not lines[p].strip() or lines[p].lstrip().startswith("#")):
        p += 1
    return p


def key_path(lines: list[str], index: int) -> str:
    """The dotted key of the statement on line `index` ("mqtt.url", "sources[1].id", "[mqtt]")."""
    table, arrays = "", dict[str, int]()
    for line in lines[:index]:
        header = _HEADER.match(line)
        if header:
            name = header.group(2).strip()
            if header.group(1) == "[[":
                arrays[name] = arrays.get(name, -1) + 1
                table = f"{name}[{arrays[name]}]"
            else:
                table = name
    line = lines[index] if index < len(lines) else ""
    header = _HEADER.match(line)
    if header:
        return line.strip()
    if line.lstrip().startswith("["):
        return line.strip()  # a table header that does not close
    key = _KEY.match(line)
    name = key.group(1).strip() if key else (line.split() or [""])[0]
    return ".".join(p for p in (table, name) if p) or "(top level)"


def syntax_problem(text: str, exc: tomllib.TOMLDecodeError) -> ConfigProblem:
    """One problem for a TOML syntax error: key path and line, the line as written, the fix."""
    message = str(exc)
    where = _WHERE.search(message)
    reason = message[: where.start()] if where else message
    lines = text.split("\n")
    reported = int(where.group(1)) if where and where.group(1) else len(lines)
    index = _statement_start(lines, reported)
    fix = next((f for prefix, f in _FIXES if reason.startswith(prefix)), "valid TOML (see toml.io)")
    shown = mask_secrets(lines[index].strip()) if index < len(lines) else ""
    return ConfigProblem(
        f"{key_path(lines, index)} (line {index + 1})",
        f"TOML syntax error: {reason[0].lower()}{reason[1:]}",
        shown if shown else None,
        fix,
    )


def nesting_depth(text: str) -> tuple[int, int]:
    """The deepest nesting of [ ] and { } outside strings and comments, and its 0-based line."""
    depth = deepest = line = where = 0
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            line += 1
            if quote in ('"', "'"):
                quote = ""  # a one-line string ends at the line (tomllib complains, not us)
        elif quote:
            if ch == "\\" and quote == '"':
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, line
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest, where


def depth_problem(text: str) -> ConfigProblem | None:
    """A problem when values nest deeper than MAX_DEPTH (a parser would run out of stack)."""
    deepest, index = nesting_depth(text)
    if deepest <= MAX_DEPTH:
        return None
    lines = text.split("\n")
    return ConfigProblem(
        f"{key_path(lines, index)} (line {index + 1})",
        "values nested too deeply",
        f"{deepest} levels of [ ] or {{ }}",
        f"at most {MAX_DEPTH} levels (no config key needs more than 3)",
    )
