"""The documents stay true to the code: generated parts match, every error code is documented."""

import re
from pathlib import Path

from quittance.docs import status_document
from quittance.errors import _FIELD_CODES, _HTTP_CODES

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "quittance"

_CODE_PATTERNS = (
    re.compile(r'\bcode(?:\s*:\s*str)?\s*=\s*"([a-z_]+)"'),  # class attributes and code="…"
    re.compile(r'PydanticCustomError\(\s*"([a-z_]+)"'),  # field error types
    re.compile(r'\(\s*\d{3},\s*"([a-z_]+)"'),  # problem_body(500, "…") and (413, "…", …)
    re.compile(r'\(\s*"([a-z_]+)",\s*"[A-Z][^"]*",'),  # ("code", "Title", "detail") fallbacks
    re.compile(r'(?<!get)\(\s*"([a-z_]+)",\s*"[A-Z][^"]*"\)'),  # ("code", "Message.") pairs
    re.compile(r'[A-Za-z]Error\(\s*"([a-z_]+)",\s*"[A-Z]'),  # SandboxError("code", "message")
    re.compile(r'\berror_code\s*=\s*"([a-z_]+)"'),  # a provider result's error code
)


def source_error_codes() -> set[str]:
    """Collect every stable error code that appears in the source."""
    codes = set(_FIELD_CODES.values()) | {code for code, _, _ in _HTTP_CODES.values()}
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for pattern in _CODE_PATTERNS:
            codes.update(pattern.findall(text))
    return codes


def documented_error_codes() -> set[str]:
    text = (ROOT / "docs" / "errors.md").read_text()
    return set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", text, re.MULTILINE))


def test_invoice_statuses_document_is_generated_from_the_code() -> None:
    written = (ROOT / "docs" / "invoice-statuses.md").read_text()
    assert written == status_document(), (
        "docs/invoice-statuses.md is out of date with src/quittance/domain/invoice.py; "
        "run `make docs`"
    )


def test_the_code_collection_finds_the_known_codes() -> None:
    codes = source_error_codes()
    expected = {
        "invoice_not_found",
        "idempotency_key_reused",
        "amount_not_integer",
        "field_required",
        "body_too_large",
        "internal_error",
        "http_error",
        "bad_request",
    }
    assert expected <= codes


def test_every_error_code_in_the_source_is_documented() -> None:
    missing = sorted(source_error_codes() - documented_error_codes())
    assert missing == [], f"add these codes to docs/errors.md: {missing}"


def test_readme_gives_the_two_commands_and_ci_runs_the_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme
    assert "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, re.MULTILINE), ".ci/run must call `make test`"


def test_every_documented_error_code_still_exists() -> None:
    stale = sorted(documented_error_codes() - source_error_codes())
    assert stale == [], f"remove or rename these codes in docs/errors.md: {stale}"
