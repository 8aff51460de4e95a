"""The architecture's rules, read from the code's own imports: core/ never imports streamlit, sandbox/ or
pages/; only the SnapTrade client imports the SDK; pages never import SQL or the SDK; and core's packages
import one another only down the data's path (the SnapTrade client and its vocabulary at the bottom, then storage; web and the CLI on top).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A package may import its own modules and those of packages listed before it (lower layers).
LAYERS = ["settings", "redaction", "logs", "gcpace", "snaptrade", "messages", "storage", "jobs.queue", "accounts", "ingest.normalize", "journal", "ingest", "jobs.worker",
          "reads", "web", "staff", "cli"]  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> int | None:
    """The layer of a core module name such as 'core.ingest.sync' (the longest LAYERS prefix wins)."""
    rest = module.removeprefix("core.")
    best = None
    for i, prefix in enumerate(LAYERS):
        if rest == prefix or rest.startswith(prefix + "."):
            if best is None or len(prefix) > len(LAYERS[best]):
                best = i
    return best


def _core_modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts): p for p in (ROOT / "core").rglob("*.py")}


def test_core_never_imports_streamlit_sandbox_or_pages():
    offenders = sorted(f"{m} imports {name}" for m, p in _core_modules().items() for name in _imports(p)
                       if name.split(".")[0] in {"streamlit", "sandbox", "pages"})  # fmt: skip
    assert not offenders, offenders


def test_only_the_snaptrade_client_imports_the_sdk():
    importers = sorted(
        m for m, p in _core_modules().items() if any(n.startswith("snaptrade_client") for n in _imports(p))
    )
    assert importers == ["core.snaptrade.client"]


def test_pages_neither_write_sql_nor_call_snaptrade():
    offenders = sorted(f"{p.name} imports {name}" for p in (ROOT / "pages").glob("*.py") for name in _imports(p)
                       if name.split(".")[0] in {"sqlalchemy", "sqlmodel", "snaptrade_client"})  # fmt: skip
    assert not offenders, offenders


# Deliberate upward imports, each inside one function, with the reason.
ALLOWED_UPWARD = {
    # Disconnecting with history deleted empties that history's journal in the same commit.
    ("core.accounts.connections", "core.journal.upkeep"),
}


def test_core_packages_import_only_down_the_path():
    upward = []
    for module, path in _core_modules().items():
        mine = _layer(module)
        if mine is None:
            continue
        for name in _imports(path):
            theirs = _layer(name) if name.startswith("core.") else None
            allowed = any(module == a and name.startswith(b) for a, b in ALLOWED_UPWARD)
            if theirs is not None and theirs > mine and not allowed:
                upward.append(f"{module} ({LAYERS[mine]}) imports {name} ({LAYERS[theirs]})")
    assert not sorted(set(upward)), sorted(set(upward))


def test_no_page_file_shadows_a_module_the_process_imports(monkeypatch):
    """During every script run Streamlit puts the entry script's folder, pages/, first on sys.path, so a page
    named like a standard-library or installed module replaces it for the whole process (pages/profile.py did:
    `import cProfile` inside a page imported the Profile page as `profile`)."""
    import importlib.util
    import sys

    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != ROOT / "pages"])
    found = {f.name: importlib.util.find_spec(f.stem) for f in (ROOT / "pages").glob("*.py")}
    # a page an earlier AppTest run imported under its bare name is the page itself, not a module it shadows
    shadowing = {name: spec.origin for name, spec in found.items()
                 if spec is not None and not str(spec.origin).startswith(str(ROOT / "pages"))}  # fmt: skip
    assert shadowing == {}, f"page files named like modules the app can import: {shadowing}"


def test_no_page_writes_a_bare_expression_streamlit_would_display():
    """Streamlit's magic writes the value of any expression statement that is not a call (a conditional expression,
    a name, a comparison) onto the page: a stray `None` in the Transactions page came from one."""
    found = []
    for path in sorted((ROOT / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            blocks = [
                b for b in (getattr(node, f, None) for f in ("body", "orelse", "finalbody")) if isinstance(b, list)
            ]
            for i, stmt in ((i, s) for block in blocks for i, s in enumerate(block)):
                docstring = i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                if isinstance(stmt, ast.Expr) and not isinstance(stmt.value, ast.Call | ast.Await) and not docstring:
                    found.append(f"{path.name}:{stmt.lineno} {ast.unparse(stmt)[:80]}")
    assert found == [], found
