"""Prints the lowest version each requirement of pyproject.toml allows.

    pip install -e . -c <(python .ci/lower_bounds.py)

installs the project on exactly those versions, for `.ci/smoke.py`.
"""

import pathlib
import re
import tomllib

project = tomllib.loads(
    (pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text()
)["project"]
for requirement in project["dependencies"]:
    match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([^,;\s]+)", requirement)
    if not match:
        raise SystemExit(f"no lower bound in requirement {requirement!r}")
    print(f"{match.group(1)}=={match.group(3)}")
