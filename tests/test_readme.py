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


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_the_csv_header_is_documented_column_by_column():
    from core.reads.export import COLUMNS

    section = _section("CSV export")
    documented = set(re.findall(r"`([a-z_]+)`", section))
    missing = [c for c in COLUMNS if c not in documented]
    assert not missing, f"CSV columns missing from the README's CSV export section: {missing}"
    assert "byte-order mark" in section and "one header row" in section


def test_first_steps_walk_a_newcomer_through_the_app_and_its_failures():
    section = _section("First steps")
    for step in ("make run", "Connect a broker", "Sync now", "Transactions", "Analytics", "staff",
                 "SANDBOX_ADMIN_TOKEN", "disable_connection", "set_faults", "503"):  # fmt: skip
        assert step in section, f"First steps does not mention {step!r}"
    # Every button or page named in bold exists in the app, so the walk-through stays clickable.
    pages_text = "\n".join(p.read_text() for p in (Path(__file__).resolve().parent.parent / "pages").glob("*.py"))
    root = Path(__file__).resolve().parent.parent
    portal = "\n".join((root / "sandbox" / name).read_text() for name in ("portal.py", "catalog.py"))
    named = set(re.findall(r"\*\*([^*]+)\*\*", section)) - {"Seeing failures on purpose."}
    missing = sorted(n for n in named if f'"{n}"' not in pages_text and n not in portal)
    assert not missing, f"First steps names things the app does not show: {missing}"


def test_the_architecture_section_names_every_module_of_core_and_no_other():
    """Each package's row of the table names exactly its modules; the sentence after it, core's own modules."""
    core = Path(__file__).resolve().parent.parent / "core"
    section = _section("Architecture")
    rows = dict(re.findall(r"^\| `core/(\w+)/` \| (.*) \|$", section, re.M))
    assert {p.name for p in core.iterdir() if (p / "__init__.py").exists()} == set(rows)
    for package, row in rows.items():
        named = set(re.findall(r"`(\w+\.py)`", row)) | set(re.findall(r"`(\w+)/`", row))
        present = {p.name for p in (core / package).iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
        assert named == present - {"__init__.py"}, f"core/{package}/: {named ^ (present - {'__init__.py'})}"
    top = {p.name for p in core.glob("*.py")} - {"__init__.py"}
    missing = [name for name in sorted(top) if f"`core/{name}`" not in section]
    assert not missing, f"core's own modules missing from the README's architecture section: {missing}"
