"""Streaming XSD validation in C: libxml2's SAX validator, called through ctypes without the GIL."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA_VALIDITY_DOMAIN = 17
"""libxml2's XML_FROM_SCHEMASV: errors raised by the XSD validator (the only ones kept)."""


class NativeUnavailable(RuntimeError):
    """libxml2 could not be reached through ctypes."""


class _XmlError(ctypes.Structure):
    # libxml2's public `struct _xmlError`, unchanged since 2.x.
    _fields_ = (
        ("domain", ctypes.c_int),
        ("code", ctypes.c_int),
        ("message", ctypes.c_char_p),
        ("level", ctypes.c_int),
        ("file", ctypes.c_char_p),
        ("line", ctypes.c_int),
        ("str1", ctypes.c_char_p),
        ("str2", ctypes.c_char_p),
        ("str3", ctypes.c_char_p),
        ("int1", ctypes.c_int),
        ("int2", ctypes.c_int),
        ("ctxt", ctypes.c_void_p),
        ("node", ctypes.c_void_p),
    )


_ERROR_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_XmlError))

_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "xmlSchemaNewParserCtxt": (ctypes.c_void_p, [ctypes.c_char_p]),
    "xmlSchemaSetParserStructuredErrors": (
        None,
        [ctypes.c_void_p, _ERROR_CALLBACK, ctypes.c_void_p],
    ),
    "xmlSchemaParse": (ctypes.c_void_p, [ctypes.c_void_p]),
    "xmlSchemaFreeParserCtxt": (None, [ctypes.c_void_p]),
    "xmlSchemaNewValidCtxt": (ctypes.c_void_p, [ctypes.c_void_p]),
    "xmlSchemaSetValidStructuredErrors": (
        None,
        [ctypes.c_void_p, _ERROR_CALLBACK, ctypes.c_void_p],
    ),
    "xmlSchemaFreeValidCtxt": (None, [ctypes.c_void_p]),
    "xmlSchemaValidCtxtGetParserCtxt": (ctypes.c_void_p, [ctypes.c_void_p]),
    "xmlParserInputBufferCreateFd": (ctypes.c_void_p, [ctypes.c_int, ctypes.c_int]),
    "xmlSchemaValidateStream": (
        ctypes.c_int,
        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p],
    ),
    "xmlSetStructuredErrorFunc": (None, [ctypes.c_void_p, _ERROR_CALLBACK]),
    "xmlStopParser": (None, [ctypes.c_void_p]),
}


@cache
def _lib() -> ctypes.CDLL:
    """The libxml2 linked into lxml (lxml's wheels export its symbols): same version as lxml's.

    The system libxml2 is deliberately not used: older versions close the file descriptor they
    are given, which the caller owns.
    """
    try:
        lib = ctypes.CDLL(etree.__file__)
    except OSError as exc:
        raise NativeUnavailable(f"lxml ne peut pas être chargé par ctypes : {exc}") from exc
    missing = [name for name in _SIGNATURES if not hasattr(lib, name)]
    if missing:
        raise NativeUnavailable(
            "cette installation de lxml n'expose pas libxml2 (fonctions absentes : "
            + ", ".join(missing)
            + ") : installez lxml depuis ses roues officielles"
        )
    for name, (restype, argtypes) in _SIGNATURES.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes
    return lib


@dataclass(frozen=True, slots=True)
class RawError:
    """A libxml2 schema-validity error, as reported (English text)."""

    line: int
    code: int
    message: str
    value: str | None


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


class CompiledSchema:
    """An XSD compiled by libxml2, read-only and shareable between threads."""

    def __init__(self, path: Path) -> None:
        lib = _lib()
        problems: list[str] = []

        def on_error(_ctx: int | None, err: ctypes._Pointer[_XmlError]) -> None:
            problems.append((_text(err.contents.message) or "").strip())

        callback = _ERROR_CALLBACK(on_error)
        parser_ctxt = lib.xmlSchemaNewParserCtxt(str(path).encode())
        if not parser_ctxt:
            raise ValueError(f"schéma illisible : {path}")
        try:
            lib.xmlSchemaSetParserStructuredErrors(parser_ctxt, callback, None)
            self._ptr: int | None = lib.xmlSchemaParse(parser_ctxt)
        finally:
            lib.xmlSchemaFreeParserCtxt(parser_ctxt)
        if not self._ptr:
            raise ValueError(f"schéma invalide {path} : {'; '.join(problems[:3])}")
        self.path = path

    @property
    def pointer(self) -> int:
        if self._ptr is None:
            raise ValueError("schéma libéré")
        return self._ptr


class StreamValidation:
    """Validate one file descriptor against a schema in a background thread.

    The file is read and parsed entirely in C (no tree is built, memory stays flat) and the GIL
    is released, so Python work can run at the same time on another core. Only schema-validity
    errors are kept; well-formedness is judged by the caller's own parser.
    """

    def __init__(self, schema: CompiledSchema, fd: int, *, max_errors: int) -> None:
        self._schema = schema
        self._fd = fd
        self._max_errors = max_errors
        self.errors: list[RawError] = []
        """Appended by the validation thread, in document order; read by the caller."""
        self.failure: BaseException | None = None
        self.on_error: Callable[[RawError], None] = self.errors.append
        """Where each error goes (the list above by default)."""
        self._stop = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cdc-xsd", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def stop(self) -> None:
        """Ask the thread to stop at its next error (the caller also cuts its input)."""
        self._stop = True

    def join(self) -> None:
        self._thread.join()

    def poll(self) -> None:
        """Nothing to do: the thread appends to `errors` itself."""

    def run_here(self) -> None:
        """Validate in the calling thread (used by the child process of xsd_worker)."""
        self._run()

    def _run(self) -> None:
        lib = _lib()
        valid_ctxt = lib.xmlSchemaNewValidCtxt(self._schema.pointer)
        emit = self.on_error
        limit = self._max_errors
        count = 0

        def on_error(_ctx: int | None, err: ctypes._Pointer[_XmlError]) -> None:
            # Runs in the validation thread, holding the GIL: keep it short and never raise.
            try:
                e = err.contents
                if e.domain != SCHEMA_VALIDITY_DOMAIN:
                    return
                nonlocal count
                count += 1
                emit(RawError(e.line, e.code, _text(e.message) or "", _text(e.str1)))
                if self._stop or count >= limit:
                    parser_ctxt = lib.xmlSchemaValidCtxtGetParserCtxt(valid_ctxt)
                    if parser_ctxt:
                        lib.xmlStopParser(parser_ctxt)
            except BaseException as exc:  # a ctypes callback must not raise
                self.failure = exc

        callback = _ERROR_CALLBACK(on_error)
        try:
            # Parser errors go to the thread-local handler: catch them so nothing is printed.
            lib.xmlSetStructuredErrorFunc(None, callback)
            lib.xmlSchemaSetValidStructuredErrors(valid_ctxt, callback, None)
            buffer = lib.xmlParserInputBufferCreateFd(self._fd, 0)
            if buffer:
                # Takes ownership of the buffer (freed with the parser context).
                lib.xmlSchemaValidateStream(valid_ctxt, buffer, 0, None, None)
        except BaseException as exc:  # reported to the caller, not lost
            self.failure = exc
        finally:
            lib.xmlSetStructuredErrorFunc(None, _ERROR_CALLBACK())
            lib.xmlSchemaFreeValidCtxt(valid_ctxt)
            self._done.set()
