"""Every code block of README.md and docs/ runs in a test or is a recorded run.

- A ```python block runs here, in a temporary directory. A ```text block
  right after it (blank lines between at most) is what it prints, and must
  match: exactly, or with every number free where the block's info string
  says `numbers-vary`. A line `...` in it stands for any lines.
- A shell command (```bash, ```console) is one of: the command of a
  committed run (`.ci/run`, the experiments' commands in
  docs/results/README.md, the recorded runs of docs/runs/), whose output a
  ```text block after it or `$`-less lines after it must quote; a
  `retrofit` command in a ```console block, run here and compared with the
  lines printed; or a `retrofit` command in a ```bash block, such as the
  GPU recipe that cannot run here, which must pass the command line's
  parsing and every check of its settings.
- Blocks say their language; ```math and ```text hold no code.
- The generated pages and sections are in sync with the code's tables
  (`python docs/generate.py`), README.md fits in 10 KB, relative links
  resolve, and every decimal number next to a link into docs/results is in
  the linked files.
"""

import contextlib
import dataclasses
import importlib.util
import io
import itertools
import pathlib
import re
import shlex

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
RESULTS = DOCS / "results"
RUNS = DOCS / "runs"
README_LIMIT = 10 * 1024
LANGUAGES = ("python", "bash", "console", "text", "math")
# Also numpy's `0.` and `-0.`.
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")


def pages():
    """README.md and the guides; docs/results is written by experiments."""
    return [REPO / "README.md"] + sorted(
        path for path in DOCS.rglob("*.md") if RESULTS not in path.parents
    )


@dataclasses.dataclass
class Block:
    path: pathlib.Path
    line: int
    language: str
    options: tuple
    text: str
    output: "Block | None" = None

    @property
    def id(self):
        return f"{self.path.relative_to(REPO)}:{self.line}"


def read_blocks(path):
    """The fenced blocks of `path`, each with the output block after it."""
    lines = path.read_text().splitlines()
    blocks, index, previous_end = [], 0, None
    while index < len(lines):
        if not lines[index].startswith("```"):
            index += 1
            continue
        info = lines[index][3:].split()
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        block = Block(
            path, index + 1, info[0] if info else "", tuple(info[1:]),
            "\n".join(lines[index + 1:end]),
        )
        adjacent = previous_end is not None and not any(
            line.strip() for line in lines[previous_end + 1:index]
        )
        if adjacent and block.language == "text" and blocks:
            blocks[-1].output = block
        blocks.append(block)
        previous_end, index = end, end + 1
    return blocks


ALL_BLOCKS = [block for path in pages() for block in read_blocks(path)]


def matches(expected, actual):
    """Whether the lines `actual` fit `expected`, where `...` is any lines."""
    chunks = [[]]
    for line in expected:
        if line.strip() == "...":
            chunks.append([])
        else:
            chunks[-1].append(line)
    position = 0
    for number, chunk in enumerate(chunks):
        if not chunk:
            continue
        last = len(actual) - len(chunk)
        starts = [position] if number == 0 else range(position, last + 1)
        for start in starts:
            if actual[start:start + len(chunk)] == chunk:
                position = start + len(chunk)
                break
        else:
            return False
    return bool(chunks[-1] == [] or position == len(actual))


def normalized(text, numbers_vary=False):
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    if numbers_vary:
        # Spacing follows the numbers (column widths, numpy's sign padding).
        lines = [re.sub(r"\s+", "", NUMBER.sub("#", line)) for line in lines]
    return lines


def assert_output(block, printed):
    if block.output is None:
        return
    vary = "numbers-vary" in block.output.options
    expected = normalized(block.output.text, vary)
    assert matches(expected, normalized(printed, vary)), (
        f"{block.output.id} does not show what {block.id} prints, which is:\n"
        f"{printed}"
    )


def test_every_block_says_its_language():
    unknown = [
        f"{block.id} ```{block.language}" for block in ALL_BLOCKS
        if block.language not in LANGUAGES
    ]
    assert not unknown, f"blocks need one of {LANGUAGES}: {unknown}"


PYTHON = [
    pytest.param(
        block, id=block.id,
        marks=[pytest.mark.slow] if "slow" in block.options else [],
    )
    for block in ALL_BLOCKS if block.language == "python"
]


@pytest.mark.parametrize("block", PYTHON)
def test_python_block_runs_and_prints_its_output(
    block, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = compile(block.text, block.id, "exec")
    exec(code, {"__name__": "__main__"})  # noqa: S102 - the docs' own code
    assert_output(block, capsys.readouterr().out)


# ---- shell commands --------------------------------------------------------


def canonical(command):
    """A command as a list of words, `--quiet` left out (CI's pip is quiet)."""
    return tuple(word for word in shlex.split(command) if word != "--quiet")


def recorded_runs():
    """Command -> the outputs of its recordings in docs/runs (one for each
    file that runs it), or `None` where no output is kept."""
    runs = {}
    for line in (REPO / ".ci" / "run").read_text().splitlines():
        if line.strip() and not line.startswith(("#", "set ", "cd ", "export ")):
            runs[canonical(line)] = None
    index = (RESULTS / "README.md").read_text()
    for command in re.findall(r"`(python experiments/[^`]+)`", index):
        runs[canonical(command)] = None
    for path in sorted(RUNS.glob("*.txt")):
        command = None
        for line in path.read_text().splitlines():
            if line.startswith("$ "):
                command = canonical(line[2:])
                output = []
                runs[command] = [*(runs.get(command) or []), output]
            elif command is not None:
                output.append(line)
            elif not line.startswith("# "):
                raise AssertionError(f"{path}: text before the first command")
    return runs


RECORDED = recorded_runs()


def logical_lines(text):
    """Lines of a shell block, continuations joined, comments dropped."""
    joined, pending = [], ""
    for line in text.splitlines():
        line = re.sub(r"\s+#\s.*$", "", line)
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            joined.append(line)
    return joined


def bash_commands(block):
    """`(command, None)` for each command of a bash block, loops expanded."""
    loops, commands = [], []
    for line in logical_lines(block.text):
        loop = re.fullmatch(r"for (\w+) in (.+?); do", line)
        if loop:
            loops.append((loop.group(1), loop.group(2).split()))
        elif line == "done":
            loops.pop()
        else:
            names = [name for name, _ in loops]
            for values in itertools.product(*(v for _, v in loops)):
                command = line
                for name, value in zip(names, values):
                    command = re.sub(rf"\${{?{name}\b}}?", value, command)
                commands.append((command, None))
    assert not loops, f"{block.id}: a loop is not closed"
    return commands


def console_commands(block):
    """`(command, output lines)` for each `$ ` line of a console block."""
    commands = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        else:
            assert commands, f"{block.id}: output before the first command"
            commands[-1][1].append(line)
    return commands


def shell_commands():
    found = []
    for block in ALL_BLOCKS:
        if block.language == "bash":
            commands = bash_commands(block)
            # A ```text block after a bash block quotes its last command.
            quoted = block.output.text.splitlines() if block.output else []
            found += [
                (block, command, quoted if i == len(commands) - 1 else [])
                for i, (command, _) in enumerate(commands)
            ]
        elif block.language == "console":
            found += [(block, c, o) for c, o in console_commands(block)]
    return found


SHELL = [
    pytest.param(block, command, output, id=f"{block.id} {command[:60]}")
    for block, command, output in shell_commands()
]


def run_retrofit(argv, capsys):
    from retrofit.cli import main

    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def check_retrofit_command(argv):
    """What `retrofit` checks before it starts, without running anything."""
    from retrofit import cli
    from retrofit.run import RunSettings

    if argv and argv[0] == "backbones":
        assert len(argv) == 1
    elif argv and argv[0] in ("evaluate", "export"):
        parser = cli.evaluate_parser if argv[0] == "evaluate" else cli.export_parser
        parser().parse_args(argv[1:])
    else:
        settings = vars(cli.train_parser().parse_args(argv))
        for name in ("out", "resume", "overwrite"):
            settings.pop(name)
        RunSettings(**settings).validate()


@pytest.mark.parametrize("block, command, output", SHELL)
def test_shell_command_is_run_or_recorded(
    block, command, output, tmp_path, monkeypatch, capsys
):
    words = canonical(command)
    if words in RECORDED:
        if output:
            recorded = RECORDED[words]
            assert recorded is not None, f"{command!r} keeps no output to quote"
            # A command recorded more than once (on other days, machines):
            # the quote comes from one of its recordings.
            assert any(matches(normalized("\n".join(output)), one)
                       for one in recorded), (
                f"{block.id} quotes output that the recorded run of "
                f"{command!r} in docs/runs does not hold"
            )
        return
    assert words[:1] == ("retrofit",), (
        f"{block.id}: {command!r} is neither run by a test nor the command "
        "of a committed run (.ci/run, docs/results/README.md, docs/runs/)"
    )
    monkeypatch.chdir(tmp_path)
    if block.language == "console":
        _, printed = run_retrofit(list(words[1:]), capsys)
        assert matches(normalized("\n".join(output)), normalized(printed)), (
            f"{block.id}: {command!r} prints:\n{printed}"
        )
    else:
        assert not output, (
            f"{block.id} quotes output of {command!r}, which no recorded run holds"
        )
        with contextlib.redirect_stderr(io.StringIO()) as errors:
            try:
                check_retrofit_command(list(words[1:]))
            except SystemExit:
                pytest.fail(f"{block.id}: {command!r}: {errors.getvalue()}")


# ---- generated pages, size, links, quoted results --------------------------


def load_generator():
    spec = importlib.util.spec_from_file_location("generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_match_the_code():
    _, stale = load_generator().stale_files()
    assert not stale, (
        "out of date with the code's tables: "
        f"{[str(p.relative_to(REPO)) for p in stale]}; run `python docs/generate.py`"
    )


def test_readme_fits_on_a_page():
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md holds {size} bytes"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def local_links(text):
    text = re.sub(r"`[^`\n]*`", "", text)  # code spans hold no links
    return [
        target.split("#")[0] for target in LINK.findall(text)
        if not re.match(r"[a-z]+:", target) and not target.startswith("#")
    ]


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(path):
    missing = [
        target for target in local_links(path.read_text())
        if not (path.parent / target).exists()
    ]
    assert not missing, f"{path}: links to missing files {missing}"


def paragraphs(text):
    """Paragraphs and list items, outside code blocks."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return re.split(r"\n\s*\n|\n(?=- |\d+\. )", text)


@pytest.mark.parametrize("path", pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_numbers_quoted_beside_results_are_in_them(path):
    for paragraph in paragraphs(path.read_text()):
        linked = [
            (path.parent / target).resolve() for target in local_links(paragraph)
        ]
        linked = [target for target in linked if RESULTS in target.parents]
        if not linked:
            continue
        sources = " ".join(target.read_text() for target in linked)
        prose = LINK.sub(" ", paragraph)
        missing = [
            number for number in re.findall(r"(?<![\w.])\d+\.\d+", prose)
            if not re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", sources)
        ]
        assert not missing, (
            f"{path.name}: {missing} are not in {[str(t) for t in linked]}:\n"
            f"{paragraph}"
        )
