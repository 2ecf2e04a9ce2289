"""Runs commands and records what they print, for the docs to quote.

    python docs/record.py docs/runs/NAME.txt "COMMAND" ["COMMAND" ...]

Each command runs with bash in the repository root, one after another; a
command that fails stops the recording and nothing is written. The file
starts with `# ` lines saying when, on what and how long each command took,
then holds each command as `$ COMMAND` followed by its standard output as a
terminal shows it (colour codes dropped, a line redrawn with carriage
returns, such as a Keras progress bar, in its last form). Standard error
(TensorFlow's start-up log, tqdm bars) is not kept. `tests/test_docs.py`
accepts a command of the docs that a file of `docs/runs/` holds, and checks
the output quoted after it against the file.
"""

import datetime
import os
import pathlib
import platform
import re
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def displayed(line):
    """`line` as a terminal shows it: `\\r` and `\\b` move the cursor back."""
    shown, cursor = [], 0
    for char in line:
        if char == "\r":
            cursor = 0
        elif char == "\b":
            cursor = max(cursor - 1, 0)
        else:
            shown[cursor:cursor + 1] = [char]
            cursor += 1
    return "".join(shown).rstrip()


def as_displayed(text):
    """`text` as a terminal leaves it, colour codes dropped."""
    lines = [displayed(line) for line in ANSI.sub("", text).split("\n")]
    return "\n".join(lines).strip("\n")


def _versions():
    import keras
    import tensorflow as tf

    return (
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}"
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        sys.exit(__doc__)
    target, commands = pathlib.Path(argv[0]), argv[1:]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
        capture_output=True, check=True,
    ).stdout.strip()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    body, seconds = [], []
    for command in commands:
        start = time.perf_counter()
        result = subprocess.run(
            ["bash", "-c", command], cwd=REPO, env=env, text=True,
            capture_output=True,
        )
        seconds.append(time.perf_counter() - start)
        if result.returncode != 0:
            sys.exit(
                f"{command!r} failed with status {result.returncode}:\n"
                f"{result.stderr[-3000:]}"
            )
        body += [f"$ {command}", as_displayed(result.stdout)]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    header = [
        f"# Recorded {when} by `python docs/record.py` at commit {commit}, on "
        f"{os.cpu_count()} CPU cores shared with other work; {_versions()}.",
        "# Seconds per command: "
        + ", ".join(f"{s:.0f}" for s in seconds) + ".",
    ]
    target.write_text("\n".join(header + body) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
