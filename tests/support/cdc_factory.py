"""Builds CDC deposit files (flux XML) for tests and benchmarks, small or very large."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

NS = "urn:cdc:cpf:pc5:schema:1.0.0"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NIL = object()
"""Marker: write the element with xsi:nil="true"."""
OMIT = object()
"""Marker: leave the element out."""

_IND = "  "


def _elem(name: str, value: object, depth: int) -> str:
    pad = _IND * depth
    if value is OMIT:
        return ""
    if value is NIL:
        return f'{pad}<cpf:{name} xsi:nil="true"/>\n'
    return f"{pad}<cpf:{name}>{value}</cpf:{name}>\n"


def titulaire(depth: int = 6, **over: object) -> str:
    """The civil-status route (`titulaire`); keyword arguments replace or omit fields."""
    fields: dict[str, object] = {
        "nomNaissance": "Martin",
        "nomUsage": NIL,
        "prenom1": "Camille",
        "anneeNaissance": "1990",
        "moisNaissance": "4",
        "jourNaissance": "17",
        "sexe": "F",
    }
    fields.update(over)
    pad = _IND * depth
    commune = over.get("commune", "31555")
    inner = "".join(_elem(k, v, depth + 1) for k, v in fields.items() if k != "commune")
    if commune is not OMIT:
        inner += (
            f"{pad}{_IND}<cpf:codeCommuneNaissance><cpf:codeInseeNaissance>"
            f"<cpf:codeInsee>{commune}</cpf:codeInsee>"
            f"</cpf:codeInseeNaissance></cpf:codeCommuneNaissance>\n"
        )
    return f"{pad}<cpf:titulaire>\n{inner}{pad}</cpf:titulaire>\n"


def dossier(depth: int = 6, id_dossier: str = "1234567890123", nom: str = "Martin") -> str:
    """The EDOF route (`dossierFormation`)."""
    pad = _IND * depth
    return (
        f"{pad}<cpf:dossierFormation>\n"
        f"{_elem('idDossier', id_dossier, depth + 1)}"
        f"{_elem('nomTitulaire', nom, depth + 1)}"
        f"{_elem('prenom1Titulaire', 'Camille', depth + 1)}"
        f"{pad}</cpf:dossierFormation>\n"
    )


def identifiant_national(depth: int = 6, nir: str = "2900431555123", nom: str = "Martin") -> str:
    """The NIR route of schema 1.1.5 (`identifiantNational`)."""
    pad = _IND * depth
    return (
        f"{pad}<cpf:identifiantNational>\n"
        f"{_elem('nir', nir, depth + 1)}"
        f"{_elem('nomNaissance', nom, depth + 1)}"
        f"{pad}</cpf:identifiantNational>\n"
    )


def passage(
    id_technique: str | None = None,
    *,
    titulaire_xml: str | None = None,
    extra: str = "",
    **over: object,
) -> str:
    """One `passageCertification`; keyword arguments replace (or OMIT/NIL) its fields."""
    depth = 5
    fields: dict[str, object] = {
        "idTechnique": id_technique if id_technique is not None else str(uuid.uuid4()),
        "obtentionCertification": "PAR_ADMISSION",
        "donneeCertifiee": "true",
        "dateDebutValidite": "2024-06-12",
        "dateFinValidite": NIL,
        "presenceNiveauLangueEuro": "false",
        "presenceNiveauNumeriqueEuro": "false",
        "scoring": NIL,
        "mentionValidee": NIL,
    }
    fields.update(over)
    pad = _IND * depth
    body = "".join(_elem(k, v, depth + 1) for k, v in fields.items())
    ident = titulaire_xml if titulaire_xml is not None else titulaire(depth + 2)
    return (
        f"{pad}<cpf:passageCertification>\n{body}"
        f"{pad}{_IND}<cpf:modalitesInscription>\n"
        f"{pad}{_IND}{_IND}<cpf:modaliteAcces>FORMATION_CONTINUE_HORS_CONTRAT_DE_PROFESSIONNALISATION"
        f"</cpf:modaliteAcces>\n"
        f"{pad}{_IND}</cpf:modalitesInscription>\n"
        f"{pad}{_IND}<cpf:identificationTitulaire>\n{ident}{pad}{_IND}</cpf:identificationTitulaire>\n"
        f"{extra}{pad}</cpf:passageCertification>\n"
    )


def certification_parts(
    passages: Iterable[str], code: str = "RNCP35185", type_: str = "RNCP"
) -> Iterator[str]:
    """One `certification` as a stream of text pieces."""
    pad = _IND * 3
    yield (
        f"{pad}<cpf:certification>\n"
        f"{pad}{_IND}<cpf:type>{type_}</cpf:type>\n"
        f"{pad}{_IND}<cpf:code>{code}</cpf:code>\n"
        f"{pad}{_IND}<cpf:natureDeposant>CERTIFICATEUR</cpf:natureDeposant>\n"
        f"{pad}{_IND}<cpf:passageCertifications>\n"
    )
    yield from passages
    yield f"{pad}{_IND}</cpf:passageCertifications>\n{pad}</cpf:certification>\n"


def certification(passages: Iterable[str], code: str = "RNCP35185", type_: str = "RNCP") -> str:
    """One `certification` holding the given passages."""
    return "".join(certification_parts(passages, code, type_))


def flux_parts(
    certifications: Iterable[str],
    *,
    horodatage: str = "2024-07-01T10:30:00+02:00",
    action: str | None = None,
    header_extra: str = "",
    certificateur_extra: str = "",
) -> Iterator[str]:
    """The file as a stream of text pieces (header, certifications…, footer)."""
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cpf:flux xmlns:cpf="{NS}" xmlns:xsi="{XSI}">\n'
        f"{_IND}<cpf:idFlux>5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f</cpf:idFlux>\n"
        f"{_IND}<cpf:horodatage>{horodatage}</cpf:horodatage>\n"
    )
    if action is not None:
        yield f"{_IND}<cpf:action>{action}</cpf:action>\n"
    yield (
        f"{header_extra}"
        f"{_IND}<cpf:emetteur>\n"
        f"{_IND * 2}<cpf:idClient>AB12CD34</cpf:idClient>\n"
        f"{_IND * 2}<cpf:certificateurs>\n"
        f"{_IND * 2}<cpf:certificateur>\n"
        f"{_IND * 3}<cpf:idClient>AB12CD34</cpf:idClient>\n"
        f"{_IND * 3}<cpf:idContrat>MCFCER000123</cpf:idContrat>\n"
        f"{_IND * 3}<cpf:certifications>\n"
    )
    yield from certifications
    yield (
        f"{_IND * 3}</cpf:certifications>\n"
        f"{_IND * 2}</cpf:certificateur>\n"
        f"{certificateur_extra}"
        f"{_IND * 2}</cpf:certificateurs>\n"
        f"{_IND}</cpf:emetteur>\n"
        "</cpf:flux>\n"
    )


def flux(certifications: Iterable[str] | None = None, **kwargs: object) -> str:
    """A whole small file as text (one certification with one passage by default)."""
    certs = certifications if certifications is not None else [certification([passage("P-1")])]
    return "".join(flux_parts(certs, **kwargs))  # type: ignore[arg-type]


def _compact(xml: str) -> str:
    return "".join(line.lstrip() + "\n" for line in xml.splitlines())


def big_passages(
    count: int, *, error_every: int = 0, errors: Mapping[int, Mapping[str, object]] | None = None
) -> Iterator[str]:
    """`count` compact passages with unique ids; every `error_every`-th one carries a bad `sexe`."""
    tpl = _compact(passage("{id}", dateDebutValidite="2024-{mm}-{dd}"))
    bad = _compact(
        passage("{id}", dateDebutValidite="2024-{mm}-{dd}", titulaire_xml=titulaire(7, sexe="X"))
    )
    for i in range(1, count + 1):
        if errors and i in errors:
            yield _compact(passage(f"PASSAGE-{i:08d}", **errors[i]))
            continue
        chosen = bad if error_every and i % error_every == 0 else tpl
        yield chosen.format(id=f"PASSAGE-{i:08d}", mm=f"{i % 12 + 1:02d}", dd=f"{i % 28 + 1:02d}")


def write_big_flux(
    path: Path, count: int, *, error_every: int = 0, per_certification: int = 50_000
) -> int:
    """Write a file of `count` passages, in certifications of `per_certification`; its size."""
    gen = big_passages(count, error_every=error_every)

    def certs() -> Iterator[str]:
        done = 0
        while done < count:
            n = min(per_certification, count - done)
            yield from certification_parts(
                (next(gen) for _ in range(n)), code=f"RNCP{35000 + done // per_certification}"
            )
            done += n

    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.writelines(flux_parts(certs()))
    return path.stat().st_size
