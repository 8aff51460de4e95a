"""The README stays true: every setting and every CLI command is documented there."""

from __future__ import annotations

import re
from pathlib import Path

from core.cli import build_parser
from core.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    section = README[README.index("## Configuration") : README.index("## Command line")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in documented)
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def test_every_cli_command_is_in_the_command_line_section():
    section = README[README.index("## Command line") : README.index("## Architecture")]
    commands = re.search(r"\{([a-z,-]+)\}", build_parser().format_usage()).group(1).split(",")
    assert "sync" in commands and "export" in commands
    missing = [name for name in commands if f"python -m core {name}" not in section]
    assert not missing, f"commands missing from the README's command-line section: {missing}"
