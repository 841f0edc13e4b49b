"""The install prefix and the host's env file: the shell scripts repeat deployments/naming.py."""

from __future__ import annotations

import re

from deployments.naming import DEFAULT_HOME, ENV_FILE
from tests.support.deployments import REPO


def shell_default(script: str, variable: str) -> str:
    """The value a script assigns to `variable` (`name=value` or `name=${X:-value}`)."""
    text = (REPO / script).read_text()
    match = re.search(rf"^{variable}=(?:\$\{{\w+:-)?([^}}\s]+)\}}?$", text, re.MULTILINE)
    assert match, f"{script}: no {variable}= line"
    return match.group(1)


def test_install_prefix_and_env_file_agree_with_naming() -> None:
    assert shell_default("scripts/install.sh", "prefix") == DEFAULT_HOME
    assert shell_default("deployments/deploy.sh", "env_file") == ENV_FILE
