"""Mechanical conventions of CONTRIBUTING.md, enforced."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "quittance"
FORBIDDEN_IN_DOMAIN = ("sqlalchemy", "fastapi", "starlette", "httpx", "pydantic", "quittance.db")


def _python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def test_domain_imports_no_web_or_database_library() -> None:
    offenders = []
    for path in _python_files(SRC / "domain"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN_IN_DOMAIN)]
    assert offenders == []


def test_only_the_unit_of_work_commits() -> None:
    offenders = []
    for path in _python_files(SRC):
        if path == SRC / "db" / "uow.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "commit"
            ):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_every_table_carries_merchant_id() -> None:
    import quittance.models  # noqa: F401
    from quittance.db.base import Base

    missing = [t.name for t in Base.metadata.sorted_tables if "merchant_id" not in t.columns]
    assert missing == []


def test_no_floats_in_money_columns() -> None:
    from sqlalchemy import Float, Numeric

    import quittance.models  # noqa: F401
    from quittance.db.base import Base

    floats = [
        f"{t.name}.{c.name}"
        for t in Base.metadata.sorted_tables
        for c in t.columns
        if isinstance(c.type, Float | Numeric)
    ]
    assert floats == []
