"""Read Authentication-Results headers (RFC 8601) written by the receiving host we trust.

Hand-written on purpose: the one library for it (authres) has had no release since 2019, and
we only need the authserv-id and the `method=result` pairs, not the property details.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def _without_comments(value: str) -> str:
    """Drop (comments), nested or not, outside quoted strings; they may hold any text."""
    kept: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                kept.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                kept.append(char)
            continue
        if quoted:
            quoted = char != '"'
            kept.append(char)
        elif char == '"' and depth == 0:
            quoted = True
            kept.append(char)
        elif char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            kept.append(char)
    return "".join(kept)


def _statements(value: str) -> list[str]:
    """Split on `;` outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts]


def results(header: str) -> tuple[str, list[tuple[str, str]]]:
    """(authserv-id, [(method, result), …]) of one header value; methods lower-cased."""
    statements = _statements(_without_comments(header))
    head = statements[0].split()
    authserv_id = head[0].lower() if head else ""
    pairs = []
    for statement in statements[1:]:
        words = statement.split()
        if not words or "=" not in words[0]:
            continue
        method, _, result = words[0].partition("=")
        pairs.append((method.split("/")[0].lower(), result.strip('"').lower()))
    return authserv_id, pairs


def trusted_results(headers: Iterable[str], authserv_id: str, method: str) -> Iterator[str]:
    """Results for `method` in the headers our trusted receiving host wrote.

    Headers claiming another authserv-id may come from anyone on the way, so they are ignored.
    """
    if not authserv_id:
        return
    for header in headers:
        server, pairs = results(header)
        if server == authserv_id.lower():
            yield from (result for name, result in pairs if name == method)


def dkim_failed(headers: Iterable[str], authserv_id: str) -> bool:
    """True when our receiving host says a DKIM signature of this message did not verify."""
    return any(
        result in {"fail", "permerror"} for result in trusted_results(headers, authserv_id, "dkim")
    )
