"""The docs say what the code does: every `ckrun …` line of README.md and docs/ runs as written.

Each command line quoted in the docs (code blocks and inline code) must name an existing command
and only its options, with values its choices accept, and every ``--set KEY=VALUE`` must be a
config key the run config accepts with that value. README.md must name every config key, and its
table of keys must give the defaults `ckrun train` uses. Pure parsing: nothing is trained or
logged, so the docs cannot drift from the code unnoticed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from ckrun.cli import cli
from ckrun.config import TrainConfig, load_config
from ckrun.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*(\.\.\.|…)?$|=[A-Z][A-Z_]*$|^key=value$")


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, what follows `ckrun `) for each ckrun command in code blocks and inline code."""
    found: list[tuple[int, str]] = []
    prose: list[str] = []
    in_code = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            prose.append("")
            continue
        prose.append("" if in_code else line)
        if in_code and re.match(r"\s+\[", line) and found:  # a synopsis line continued below
            found[-1] = (found[-1][0], found[-1][1] + " " + line.strip())
        elif in_code:
            # up to a chained command or a description in a column of its own; comments dropped
            code = re.split(r"(?:^|\s)#(?:\s|$)", line)[0]
            pattern = r"(?:^|[\s;&(])(?:\S*/)?ckrun\s+(.*?)(?=$|\s{3,}[a-zA-Z(]|&&|;)"
            found += [(number, m.group(1).strip()) for m in re.finditer(pattern, code)]
    joined = "\n".join(prose)
    for m in re.finditer(r"`([^`]*)`", joined):
        span = m.group(1).replace("\n", " ")
        number = joined.count("\n", 0, m.start()) + 1
        command = re.match(r"(?:[A-Z_]+=\S+\s+)*(?:\S*/)?ckrun\s+(.*)$", span)
        if command:
            found.append((number, command.group(1)))
        elif span.startswith("--set "):
            found.append((number, "train " + span))
    return found


def _tokens(text: str) -> list[str]:
    """Shell words without a synopsis's brackets and ellipses (`[--cv K [--ensemble]]`)."""
    out = []
    for word in shlex.split(text):
        word = word.lstrip("[")
        while word.endswith("]") and word.count("]") > word.count("["):
            word = word[:-1]
        word = word.removesuffix("...").removesuffix("…")
        if word:
            out.append(word)
    return out


def problems(args: str) -> list[str]:
    """What is wrong with `ckrun ARGS` as the docs write it (empty when it is right)."""
    words = _tokens(args)
    command: click.Command = cli
    while isinstance(command, click.Group) and words:
        word = words.pop(0)
        if word.startswith("-"):
            continue
        if word not in command.commands:
            return [f"no command {word!r}"] if word.isidentifier() and word.islower() else []
        command = command.commands[word]
    if isinstance(command, click.Group):
        return []
    options = {name: p for p in command.params for name in (*p.opts, *p.secondary_opts)}
    found, sets = [], []
    while words:
        word = words.pop(0)
        if not word.startswith("--"):
            continue
        name, _, value = word.partition("=")
        param = options.get(name)
        if param is None:
            found.append(f"`ckrun {command.name}` has no option {name}")
            continue
        if not getattr(param, "is_flag", False) and not value and words:
            value = words.pop(0)
        if name == "--set":
            sets.append(value)
        elif isinstance(param.type, click.Choice) and not PLACEHOLDER.search(value):
            found += [f"{name} {v!r} is not one of {list(param.type.choices)}" for v in value.split("|")
                      if v not in param.type.choices]  # fmt: skip
    sets = [s for s in sets if not PLACEHOLDER.search(s)]
    if sets:
        try:
            load_config(overrides=sets)
        except ConfigError as exc:
            found.append(f"--set {' '.join(sets)}: {exc}")
    return found


def test_every_ckrun_command_in_the_docs_exists_with_its_options_and_config_keys() -> None:
    wrong, seen = [], 0
    for doc in DOCS:
        for number, args in command_lines(doc.read_text(encoding="utf-8")):
            seen += 1
            wrong += [f"{doc.relative_to(ROOT)}:{number}: ckrun {args.strip()}: {p}" for p in problems(args)]
    assert seen > 100, f"found only {seen} ckrun command lines: the parser has stopped finding them"
    assert not wrong, "doc lines the CLI or the config would refuse:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ("train --sett l2=1e-4", "no option --sett"),
        ("train --set l2=-1", "l2"),
        ("train --set no_such_key=1", "no_such_key"),
        ("train --set reference=neutral", "one grey channel"),
        ("baseline --model hog-lbp", "'hog-lbp' is not one of"),
        ("trian --cv 5", "no command 'trian'"),
        ("tune [--data DATA] [--n-trial N]", "no option --n-trial"),
    ],
)
def test_the_check_catches_a_wrong_doc_line(args: str, needle: str) -> None:
    assert any(needle in p for p in problems(args)), problems(args)


def test_the_parser_finds_commands_in_code_blocks_synopses_and_inline_code() -> None:
    text = (
        "```bash\n.venv/bin/ckrun train --cv 5   # a comment\n"
        "ckrun tune [--data DATA]\n           [--heartbeat S]\n```\n"
        "Run `ckrun baseline\n--cv 5` or `--set l2=1e-4`."
    )
    assert command_lines(text) == [
        (2, "train --cv 5"),
        (3, "tune [--data DATA] [--heartbeat S]"),
        (6, "baseline --cv 5"),
        (7, "train --set l2=1e-4"),
    ]


def test_the_readme_names_every_config_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_0-9]+)", readme))
    assert not sorted(set(TrainConfig.model_fields) - named), "config keys the README never names"


def _doc_value(text: str) -> Any:
    text = text.strip().strip("`")
    if text.startswith("["):
        return tuple(int(v) for v in text.strip("[]").split(","))
    special = {"true": True, "false": False, "null": None}
    if text in special:
        return special[text]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def test_the_readme_key_table_gives_the_defaults_of_ckrun_train() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| keys | default | what they set |", 1)[1].split("\n\n", 1)[0]
    defaults = TrainConfig()
    wrong, rows = [], 0
    for row in table.splitlines()[2:]:
        keys_cell, values_cell = row.split(" | ")[:2]
        keys = re.findall(r"`([a-z_0-9]+)`", keys_cell)
        values = re.split(r",\s*(?![^\[]*\])", values_cell)
        rows += 1
        if len(keys) != len(values):
            wrong.append(f"{keys}: {len(values)} defaults for {len(keys)} keys")
            continue
        for key, value in zip(keys, values, strict=True):
            if _doc_value(value) != getattr(defaults, key):
                wrong.append(f"{key}: README says {value.strip()}, the code {getattr(defaults, key)!r}")
    assert rows > 10
    assert not wrong, "README's table of keys disagrees with TrainConfig:\n" + "\n".join(wrong)
