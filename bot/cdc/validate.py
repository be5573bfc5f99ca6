"""Streaming validation of a CDC deposit file: XSD and business rules, one read per core.

How it works (memory stays flat whatever the file size):

    file ─► thread "cdc-xsd": libxml2 SAX parser + XSD, in C, GIL released ─► raw errors
      │                                                        (line, libxml2 code, text)
      └──► this thread: lxml pull parser, events for passageCertifications only
             after each chunk, the passages finished (and read past by the XSD thread):
             • idTechnique uniqueness and the other rules, selected in C by XPath over the
               whole batch (rules.py), checked in Python only for the few suspects;
             • XSD errors on those lines located in the live tree (element name, line,
               value) to give them a path and an idTechnique;
             • then dropped from the tree in one slice deletion.

A DOCTYPE (DTD, entities, billion laughs, external entities) is refused before any parsing;
neither parser loads anything from the network.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO

from lxml import etree

from bot.cdc.messages import XsdProblem, explain
from bot.cdc.native import RawError, StreamValidation
from bot.cdc.outcome import Code, Finding, Outcome, Report
from bot.cdc.rules import (
    MAX_FILE_BYTES,
    MAX_PASSAGES,
    Hit,
    check_horodatage,
    check_passage,
    id_texts,
    line_of,
    q,
    suspects,
)
from bot.cdc.schemas import DEFAULT_SCHEMA, LoadedSchema, SchemaRef, load_schema, resolve_schema
from bot.cdc.xsd_worker import ProcessValidation

XsdEngine = StreamValidation | ProcessValidation
Progress = Callable[[int, int], None]
"""Called with (bytes read, file size) as the file is read."""

ERROR_CAP = 100_000
"""Errors kept when no limit is given: enough for any real file, bounded in memory."""
CHUNK = 1 << 18
PROLOG_MAX = 1 << 20
"""A root element must start within this many bytes."""
XSD_MARGIN = 1 << 18
"""How far the XSD thread must have read past an element before its errors are all known."""
LAG_MAX = 2 << 20
"""How far ahead of the XSD thread this one may read before waiting for it."""
PROCESS_FROM_BYTES = 16 << 20
"""From this size on, the XSD runs in a child process rather than a thread."""
STALL_BYTES = 16 << 20
"""Bytes read without meeting a known element before we stop (the tree would grow unbounded)."""
"""Ended elements waiting for the XSD thread; beyond this we wait for it."""

_FLUX = q("flux")
_HORODATAGE = q("horodatage")
_CERTIFICATEURS = f"{q('emetteur')}/{q('certificateurs')}/{q('certificateur')}"
_CERTIFICATION = q("certification")
_PASSAGE = q("passageCertification")
_ID = q("idTechnique")
_CONTAINER = q("passageCertifications")
_ALWAYS_INDEXED = frozenset({"certification", "passageCertification", "resultat"})


def validate_file(
    path: str | os.PathLike[str],
    schema: str | os.PathLike[str] = DEFAULT_SCHEMA,
    max_errors: int | None = None,
    progress: Progress | None = None,
    *,
    now: datetime | None = None,
) -> Report:
    """Check a deposit file against an XSD (`1.1.2`, `1.1.5` or a path) and the CDC rules.

    Every error is reported, up to `max_errors` (and at most ERROR_CAP). `now` is the instant
    `horodatage` is compared with (timezone-aware; the system clock by default).
    Raises ConfigError only for an unknown or broken schema: problems with the file itself are
    outcomes of the report.
    """
    ref = resolve_schema(schema if isinstance(schema, str) else Path(schema))
    loaded = load_schema(ref)
    limit = ERROR_CAP if max_errors is None else max(1, min(max_errors, ERROR_CAP))
    instant = now if now is not None else datetime.now(UTC)
    if instant.tzinfo is None:
        raise ValueError("now doit porter un fuseau horaire")
    return _Validation(Path(path), loaded, limit, progress, instant).run()


def _short(
    ref: SchemaRef, outcome: Outcome, code: Code, message: str, line: int | None = None
) -> Report:
    return Report(outcome, ref.label, errors=(Finding(code, message, line),))


class _Stop(Exception):
    """Internal: the error limit is reached."""


class _Container:
    """A passageCertifications element whose finished passages are checked then dropped."""

    __slots__ = ("certification", "element", "ended", "path", "removed")

    def __init__(self, element: etree._Element, certification: int) -> None:
        self.element = element
        self.certification = certification
        self.removed = 0
        """Passages already checked and dropped."""
        self.ended = False
        self.path: str | None = None


class _Validation:
    def __init__(
        self, path: Path, schema: LoadedSchema, limit: int, progress: Progress | None, now: datetime
    ) -> None:
        self.path = path
        self.schema = schema
        self.limit = limit
        self.progress = progress
        self.now = now
        self.findings: list[Finding] = []
        self.passages = 0
        self.root: etree._Element | None = None
        self.scheduled: set[etree._Element] = set()
        self.removed_of: dict[etree._Element, int] = {}
        """Certifications already dropped from a `certifications` element."""
        self.certification_of: dict[etree._Element, int] = {}
        self.containers: deque[_Container] = deque()
        self.container_of: dict[etree._Element, _Container] = {}
        self.ended_certifications: deque[etree._Element] = deque()
        self.first_of_id: dict[str, int] = {}
        """idTechnique → ordinal (1-based, whole file) of the first passage using it."""
        self.certification_starts: list[tuple[int, int]] = []
        """(ordinal of its first passage, certification number) for each passageCertifications."""
        self.snapshots: deque[tuple[int, _Container, int]] = deque()
        self.xsd_next = 0
        self.explained: dict[tuple[int, str, str | None], XsdProblem] = {}
        self.truncated = False
        self.last_event_at = 0
        self.fed = 0
        self.reached = 0
        """Bytes the XSD thread had read when last asked."""
        self.lines = 1
        """Line number libxml2 has reached at the end of the bytes fed so far."""
        self.previous_cr = False

    # ------------------------------------------------------------------ entry point

    def run(self) -> Report:
        label = self.schema.ref
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            return _short(
                label,
                Outcome.UNREADABLE,
                Code.UNREADABLE,
                f"Impossible d'ouvrir le fichier {self.path} : {exc.strerror or exc}.",
            )
        with handle:
            info = os.fstat(handle.fileno())
            if not S_ISREG(info.st_mode):
                return _short(
                    label,
                    Outcome.UNREADABLE,
                    Code.UNREADABLE,
                    f"{self.path} n'est pas un fichier ordinaire.",
                )
            refused = _check_prolog(handle, label)
            if refused is not None:
                return refused
            if info.st_size > MAX_FILE_BYTES:
                self.findings.append(
                    Finding(
                        Code.FILE_TOO_LARGE,
                        f"Le fichier pèse {info.st_size / 1e6:.0f} Mo ; la CDC n'accepte pas plus "
                        f"de {MAX_FILE_BYTES / 1e6:.0f} Mo par dépôt. Répartissez les passages "
                        "dans plusieurs fichiers.",
                    )
                )
            try:
                return self._validate(handle, info.st_size)
            except OSError as exc:  # the disk or the file went away while reading
                return _short(
                    label,
                    Outcome.UNREADABLE,
                    Code.UNREADABLE,
                    f"Lecture de {self.path} impossible : {exc.strerror or exc}.",
                )

    def _validate(self, handle: BinaryIO, size: int) -> Report:
        xsd_fd = os.open(self.path, os.O_RDONLY)
        # Big files: the XSD runs in a child process, whose errors cost this one no GIL
        # hand-over; small ones: a thread, which starts in no time.
        engine = ProcessValidation if size >= PROCESS_FROM_BYTES else StreamValidation
        xsd: XsdEngine = engine(self.schema.native, xsd_fd, max_errors=self.limit + 1)
        xsd.start()
        broken: etree.XMLSyntaxError | None = None
        try:
            self._stream(handle, size, xsd, xsd_fd)
        except etree.XMLSyntaxError as exc:
            broken = exc
        except _Stop:
            self.truncated = True
        finally:
            if not xsd.done:
                xsd.stop()
                _cut(xsd_fd)
            xsd.join()
            os.close(xsd_fd)
        if xsd.failure is not None:
            raise xsd.failure
        if broken is not None:
            line = broken.lineno if broken.lineno and broken.lineno > 0 else None
            where = f"ligne {line}" if line else "début du fichier"
            return _short(
                self.schema.ref,
                Outcome.NOT_XML,
                Code.NOT_XML,
                f"Le fichier n'est pas un XML bien formé ({where}) : {broken.msg}. "
                "Réenregistrez-le depuis l'outil qui l'a produit, en UTF-8.",
                line,
            )
        if not self.truncated:
            try:
                self._resolve(xsd.errors, None, None)
            except _Stop:
                self.truncated = True
        return self._report()

    # ------------------------------------------------------------------ reading

    def _stream(self, handle: BinaryIO, size: int, xsd: XsdEngine, xsd_fd: int) -> None:
        # Events for one tag only: every extra tag costs a check on each element in lxml.
        parser = etree.XMLPullParser(
            events=("start", "end"),
            tag=_CONTAINER,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
        )
        fed = 0
        while chunk := handle.read(CHUNK):
            fed += len(chunk)
            self.fed = fed
            self._count_lines(chunk)
            parser.feed(chunk)
            self._events(parser.read_events(), fed)
            self._harvest(xsd, xsd_fd, fed, final=False)
            if fed - self.last_event_at > STALL_BYTES:
                self._add(
                    Finding(
                        Code.XSD_INVALID,
                        f"Plus de {STALL_BYTES >> 20} Mo sans passage reconnu : la structure du "
                        "fichier ne suit pas le schéma, la vérification s'arrête ici.",
                    )
                )
                raise _Stop
            if self.progress is not None:
                self.progress(fed, size)
        root = parser.close()
        self._events(parser.read_events(), fed)
        self.root = root
        xsd.join()
        self._harvest(xsd, xsd_fd, fed, final=True)
        if root.tag == _FLUX:
            self._header(root)

    def _count_lines(self, chunk: bytes) -> None:
        self.lines += chunk.count(b"\n")
        if b"\r" in chunk or self.previous_cr:
            # libxml2 also counts a lone CR as a line break (CR LF counts once).
            crlf = chunk.count(b"\r\n") + (1 if self.previous_cr and chunk[:1] == b"\n" else 0)
            self.lines += chunk.count(b"\r") - crlf
            self.previous_cr = chunk[-1:] == b"\r"

    def _events(self, events: Iterable[tuple[str, object]], fed: int) -> None:
        for event, element in events:
            if not isinstance(element, etree._Element):
                continue
            self.last_event_at = fed
            if event == "start":
                self._container_started(element)
            else:
                found = self.container_of.get(element)
                if found is not None:
                    found.ended = True

    def _container_started(self, element: etree._Element) -> None:
        if self.root is None:
            self.root = element.getroottree().getroot()
        certification = element.getparent()
        number = 0
        if certification is not None and certification.tag == _CERTIFICATION:
            holder = certification.getparent()
            if holder is not None:
                # Certifications before this one are finished: drop them once checked.
                done = []
                for previous in certification.itersiblings(preceding=True):
                    if previous in self.scheduled:
                        break
                    done.append(previous)
                for previous in reversed(done):
                    self.scheduled.add(previous)
                    self.ended_certifications.append(previous)
                number = self.removed_of.get(holder, 0) + holder.index(certification) + 1
                self.certification_of[certification] = number
        container = _Container(element, number)
        self.containers.append(container)
        self.container_of[element] = container

    def _header(self, root: etree._Element) -> None:
        """Rules on the few elements outside passages (they stay in the tree to the end)."""
        horodatage = root.find(_HORODATAGE)
        if horodatage is not None:
            hit = check_horodatage(horodatage, self.now)
            if hit is not None:
                self._rule(hit, None)
        for extra in root.findall(_CERTIFICATEURS)[1:2]:
            self._rule(
                Hit(
                    extra,
                    Code.MULTIPLE_CERTIFICATEURS,
                    "Un fichier ne porte qu'un seul certificateur : faites un fichier par "
                    "certificateur.",
                ),
                None,
            )

    # ------------------------------------------------------------------ finished passages

    def _harvest(self, xsd: XsdEngine, xsd_fd: int, fed: int, *, final: bool) -> None:
        """Check and drop the finished passages the XSD thread has read past.

        After each chunk we note how many passages were finished at that point (a snapshot);
        once the XSD thread has read XSD_MARGIN beyond it, all their XSD errors are known.
        """
        if self.containers:
            last = self.containers[-1]
            finished = len(last.element) if last.ended else len(last.element) - 1
            self.snapshots.append((fed, last, last.removed + max(finished, 0)))
        if final or xsd.done:
            target = self.snapshots[-1] if self.snapshots else None
            self.snapshots.clear()
        else:
            if not self.snapshots:
                return
            if self.snapshots[0][0] + XSD_MARGIN > self.reached:
                self.reached = os.lseek(xsd_fd, 0, os.SEEK_CUR)
            reached = self.reached
            while fed - reached > LAG_MAX and not xsd.done:
                time.sleep(0.001)  # far ahead of the XSD thread: let it catch up
                reached = self.reached = os.lseek(xsd_fd, 0, os.SEEK_CUR)
            if xsd.done:
                reached = fed + XSD_MARGIN
            target = None
            while self.snapshots and self.snapshots[0][0] + XSD_MARGIN <= reached:
                target = self.snapshots.popleft()
        if target is None:
            return
        _, target_container, target_done = target
        xsd.poll()  # after reading its progress: every error before that point is in
        errors = xsd.errors
        while self.containers:
            container = self.containers[0]
            element = container.element
            is_target = container is target_container
            count = target_done - container.removed if is_target and not final else len(element)
            if count > 0:
                self._check_batch(container, count)
                if self.xsd_next < len(errors):
                    self._resolve(errors, container, count)
                container.removed += count
                del element[:count]
            if is_target and not (final or (container.ended and len(element) == 0)):
                break
            self.containers.popleft()
            self.container_of.pop(element, None)
            if is_target:
                break
        self._drop_certifications(errors)

    def _drop_certifications(self, errors: list[RawError]) -> None:
        """Drop the finished certifications whose passages are all checked."""
        while self.ended_certifications:
            certification = self.ended_certifications[0]
            if self.containers and _within(self.containers[0].element, certification):
                break
            if self.xsd_next < len(errors):
                self._resolve(errors, None, None, before=self.lines)
            self.ended_certifications.popleft()
            self.scheduled.discard(certification)
            self.certification_of.pop(certification, None)
            parent = certification.getparent()
            certification.clear()
            if parent is not None:
                self.removed_of[parent] = self.removed_of.get(parent, 0) + 1
                parent.remove(certification)

    def _check_batch(self, container: _Container, count: int) -> None:
        """Rules on the first `count` children of a passageCertifications (all finished)."""
        element = container.element
        first_ordinal = self.passages + 1
        if container.removed == 0:
            self.certification_starts.append((first_ordinal, container.certification))
        self.passages += count
        self.last_event_at = self.fed
        if first_ordinal <= MAX_PASSAGES < self.passages:
            extra = element[MAX_PASSAGES - first_ordinal + 1]
            self._rule(
                Hit(
                    extra,
                    Code.TOO_MANY_PASSAGES,
                    f"Le fichier dépasse {MAX_PASSAGES:,} passages (limite de la CDC par dépôt) : "
                    "répartissez les passages dans plusieurs fichiers.".replace(",", " "),
                ),
                _id_of(extra),
            )
        ids = id_texts(element, count)
        if len(ids) != count:
            ids = [_id_of(element[i]) or "" for i in range(count)]
        ids = [raw.strip() for raw in ids]
        first_of_id = self.first_of_id
        if len(set(ids)) == count and first_of_id.keys().isdisjoint(ids) and "" not in ids:
            first_of_id.update(zip(ids, range(first_ordinal, first_ordinal + count), strict=True))
        else:
            for offset, id_technique in enumerate(ids):
                if not id_technique:
                    continue
                first = first_of_id.setdefault(id_technique, first_ordinal + offset)
                if first != first_ordinal + offset:
                    self._duplicate(element[offset], id_technique, first)
        for suspect in suspects(element, count):
            suspect_id, hits = check_passage(suspect)
            for hit in hits:
                self._rule(hit, suspect_id)

    def _duplicate(self, passage: etree._Element, id_technique: str, first: int) -> None:
        where = bisect_right(self.certification_starts, (first, 1 << 62)) - 1
        start, certification = self.certification_starts[where] if where >= 0 else (1, 0)
        number = first - start + 1
        id_element = passage.find(_ID)
        self._rule(
            Hit(
                id_element if id_element is not None else passage,
                Code.DUPLICATE_ID_TECHNIQUE,
                f"idTechnique « {id_technique} » est déjà utilisé par le passage n° {number} de "
                f"la certification n° {certification} : chaque passage doit avoir son propre "
                "identifiant.",
            ),
            id_technique,
        )

    # ------------------------------------------------------------------ XSD errors

    def _resolve(
        self,
        errors: list[RawError],
        container: _Container | None,
        count: int | None,
        *,
        before: int | None = None,
    ) -> None:
        """Turn pending XSD errors into located findings.

        With a container: errors on lines already fully parsed, plus those on the current line
        whose element is among the `count` passages about to be dropped. With `before`: errors
        on earlier lines. Otherwise (end of file): all of them.
        """
        batch_end = self.lines if container is not None else before
        while self.xsd_next < len(errors):
            raw = errors[self.xsd_next]
            problem = self._explain(raw)
            if batch_end is not None and raw.line >= batch_end:
                if raw.line > batch_end or container is None or count is None:
                    return
                element = self._locate(problem, raw.line, container)
                passage = _passage_of(element) if element is not None else None
                if (
                    passage is None
                    or passage.getparent() is not container.element
                    or container.element.index(passage) >= count
                ):
                    return  # later on this line: wait until it is parsed
            else:
                element = self._locate(problem, raw.line, container)
            self.xsd_next += 1
            passage = _passage_of(element) if element is not None else None
            self._add(
                Finding(
                    problem.code,
                    problem.message,
                    raw.line or None,
                    self._path(element) if element is not None else "",
                    _id_of(passage) if passage is not None else None,
                )
            )

    def _explain(self, raw: RawError) -> XsdProblem:
        """explain(), remembered: a file with 10 000 errors often has a handful of kinds."""
        key = (raw.code, raw.message, raw.value)
        problem = self.explained.get(key)
        if problem is None:
            if len(self.explained) >= 4096:
                self.explained.clear()
            problem = explain(raw.code, raw.message, raw.value, self.schema.required)
            self.explained[key] = problem
        return problem

    def _locate(
        self, problem: XsdProblem, line: int, container: _Container | None = None
    ) -> etree._Element | None:
        """The live element an XSD error is about: same name, last one starting at or before
        the error's line; on ties, the one whose value or content matches the message.

        Inside a batch of passages, the passage is found first by bisection on start lines,
        so that thousands of errors do not each walk the whole live tree.
        """
        if problem.qname is None or self.root is None:
            return None
        if container is not None:
            passages = container.element
            low, high = 0, len(passages) - 1
            if high >= 0 and line_of(passages[0]) <= line:
                while low < high:
                    middle = (low + high + 1) // 2
                    if line_of(passages[middle]) <= line:
                        low = middle
                    else:
                        high = middle - 1
                start = line_of(passages[low])
                # Trust the bisection only when the next passage starts on a later line than
                # the error (otherwise the error may be after this passage, or several
                # passages share the line): the global search then decides.
                followed = low < len(passages) - 1 and line_of(passages[low + 1]) > line
                alone = low == 0 or line_of(passages[low - 1]) < start
                if followed and alone:
                    found = _best(passages[low].iter(problem.qname), problem, line)
                    if found is not None:
                        return found
        return _best(self.root.iter(problem.qname), problem, line)

    def _path(self, element: etree._Element) -> str:
        parts: list[str] = []
        node: etree._Element | None = element
        while node is not None:
            tag = node.tag
            parent = node.getparent()
            container = self.container_of.get(parent) if parent is not None else None
            if container is not None and parent is not None:
                # A passage: its number counts the passages already dropped; the path of its
                # passageCertifications is computed once per container.
                if container.path is None:
                    container.path = self._path(parent)
                number = container.removed + parent.index(node) + 1
                parts.append(f"{_local(tag)}[{number}]")
                return container.path + "/" + "/".join(reversed(parts))
            name = _local(tag)
            index = self.certification_of.get(node)
            if index is None and parent is not None:
                before = sum(1 for _ in node.itersiblings(tag, preceding=True))
                if before or name in _ALWAYS_INDEXED:
                    index = before + 1
            parts.append(f"{name}[{index}]" if index is not None else name)
            node = parent
        return "/" + "/".join(reversed(parts))

    # ------------------------------------------------------------------ findings

    def _rule(self, hit: Hit, id_technique: str | None) -> None:
        element = hit.element
        self._add(
            Finding(hit.code, hit.message, line_of(element), self._path(element), id_technique)
        )

    def _add(self, finding: Finding) -> None:
        self.findings.append(finding)
        if len(self.findings) > self.limit:
            raise _Stop

    def _report(self) -> Report:
        findings = _tidy(self.findings)
        truncated = self.truncated or len(findings) > self.limit
        findings = findings[: self.limit]
        if truncated:
            findings.append(
                Finding(
                    Code.TOO_MANY_ERRORS,
                    f"Arrêt après {self.limit} erreurs : corrigez celles-ci puis relancez la "
                    "vérification pour voir la suite.",
                )
            )
        outcome = Outcome.INVALID if findings else Outcome.VALID
        return Report(outcome, self.schema.ref.label, self.passages, tuple(findings), truncated)


def _tidy(findings: list[Finding]) -> list[Finding]:
    """Sort by line and drop XSD echoes of a problem already explained better.

    A rule finding on the same element and line replaces the XSD one (e.g. NIR_INVALID over
    XSD_PATTERN); an XSD_TYPE that only follows another XSD error on the same element goes too.
    """
    ruled = {(f.line, f.path) for f in findings if not f.code.from_schema}
    kept: list[Finding] = []
    seen_xsd: set[tuple[int | None, str]] = set()
    for finding in sorted(findings, key=lambda f: f.line or 0):
        key = (finding.line, finding.path)
        if finding.code.from_schema and finding.path:
            if key in ruled:
                continue
            if finding.code is Code.XSD_TYPE and key in seen_xsd:
                continue
            seen_xsd.add(key)
        kept.append(finding)
    return kept


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else "?"


def _best(
    candidates: Iterable[etree._Element], problem: XsdProblem, line: int
) -> etree._Element | None:
    best_line = -1
    ties: list[etree._Element] = []
    for element in candidates:
        start = line_of(element)
        if start > line:
            break
        if start > best_line:
            best_line, ties = start, [element]
        elif start == best_line:
            ties.append(element)
    if len(ties) > 1:
        narrowed = [e for e in ties if _matches(e, problem)]
        ties = narrowed or ties
    return ties[0] if ties else None


def _id_of(passage: etree._Element) -> str | None:
    return (passage.findtext(_ID) or "").strip() or None


def _within(element: etree._Element, ancestor: etree._Element | None) -> bool:
    node: etree._Element | None = element
    while node is not None:
        if node is ancestor:
            return True
        node = node.getparent()
    return False


def _passage_of(element: etree._Element) -> etree._Element | None:
    node: etree._Element | None = element
    while node is not None:
        if node.tag == _PASSAGE:
            return node
        node = node.getparent()
    return None


def _matches(element: etree._Element, problem: XsdProblem) -> bool:
    if problem.value is not None:
        return (element.text or "").strip() == problem.value.strip()
    if problem.expected:
        present = {c.tag.rsplit("}", 1)[-1] for c in element if isinstance(c.tag, str)}
        return not present.intersection(problem.expected)
    return True


def _cut(fd: int) -> None:
    """Make the XSD thread's next read hit end-of-file (it then stops quickly)."""
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _decode_head(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        return head[3:].decode("utf-8", "replace")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "replace")
    if head.startswith(b"<\x00"):
        return head.decode("utf-16-le", "replace")
    if head.startswith(b"\x00<"):
        return head.decode("utf-16-be", "replace")
    return head.decode("latin-1")


def _check_prolog(handle: BinaryIO, ref: SchemaRef) -> Report | None:
    """Refuse empty files, non-XML and any DOCTYPE before a parser sees them."""
    head = handle.read(PROLOG_MAX)
    handle.seek(0)
    text = _decode_head(head)
    if not text.strip():
        return _short(
            ref,
            Outcome.NOT_XML,
            Code.EMPTY_FILE,
            "Le fichier est vide : exportez de nouveau les passages.",
        )
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        line = text.count("\n", 0, position) + 1
        rest = text[position : position + 9]
        if position >= len(text):
            break
        if rest.startswith("<?"):
            close = text.find("?>", position + 2)
            width = 2
        elif rest.startswith("<!--"):
            close = text.find("-->", position + 4)
            width = 3
        elif rest.upper().startswith("<!DOCTYPE"):
            return _short(
                ref,
                Outcome.UNSAFE,
                Code.UNSAFE_XML,
                "Le fichier contient une déclaration DOCTYPE (DTD, entités) : refusé par sécurité. "
                "Un fichier CDC n'en a pas besoin ; retirez-la.",
                line,
            )
        elif rest.startswith("<") and not rest.startswith("<!"):
            return None
        else:
            return _short(
                ref,
                Outcome.NOT_XML,
                Code.NOT_XML,
                "Ce n'est pas un fichier XML : il doit commencer par <?xml … ?> puis l'élément "
                "flux. Vérifiez que vous avez choisi le bon fichier.",
                line,
            )
        if close < 0:
            break
        position = close + width
    if len(head) < PROLOG_MAX:
        return _short(
            ref,
            Outcome.NOT_XML,
            Code.NOT_XML,
            "Le fichier ne contient aucun élément XML (ou il est tronqué).",
        )
    return _short(
        ref,
        Outcome.UNSAFE,
        Code.UNSAFE_XML,
        "L'élément racine n'apparaît pas dans le premier Mo du fichier : refusé par sécurité.",
    )
