"""A PII scanner for chat examples: presidio-analyzer's pattern recognizers, offline, and presidio-anonymizer.

Presidio's ``AnalyzerEngine`` wants an NLP engine (a spaCy model by default, which it downloads when missing);
none is installed here and none may be fetched, so the scanner calls the predefined *pattern* recognizers
directly (``recognizer.analyze(text, entities, nlp_artifacts=None)``, which pattern and phonenumbers-based
recognizers support) and leaves out the NER ones (PERSON, LOCATION, NRP, ...). Without an NLP engine there is
no context boost ("call me at ..." raising a phone number's score), so a recognizer's own score is final.
See https://microsoft.github.io/presidio/analyzer/ and https://microsoft.github.io/presidio/supported_entities/.

Offline: ``EmailRecognizer`` validates a match's domain with ``tldextract.extract``, whose module-level extractor
fetches the Public Suffix List from publicsuffix.org (then GitHub) on first use, with no timeout, and caches it
under ``~/.cache``; with no network it falls back to its bundled snapshot, but on a network that drops packets
it would hang. Here the email recognizer validates with a ``TLDExtract(cache_dir=None, suffix_list_urls=())``:
the bundled snapshot only, nothing fetched, nothing written.

Findings leave this module as counts per entity type and spans (offsets); the matched values never do.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# What the scanner looks for unless told otherwise: identifiers that are personal data wherever they appear and
# that a recognizer validates (a Luhn or IBAN checksum, libphonenumber, a real top-level domain). URL is left out:
# links in support answers are mostly the product's own pages, and masking them would teach the model "<URL>".
# DATE_TIME is left out too (a date alone identifies no one, and it fires on every "tomorrow").
DEFAULT_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN")
# PhoneRecognizer scores a libphonenumber-valid number 0.4 and relies on context words to lift it; without an NLP
# engine nothing lifts it, so a threshold of 0.5 (the usual choice) would never report a phone number. 0.4 keeps
# it and still drops presidio's "very weak" patterns (any 9-digit number as an SSN at 0.05, a bare "::" at 0.1).
DEFAULT_THRESHOLD = 0.4

# entity type -> presidio's predefined recognizer (class name): the pattern-based ones, which need no NLP model
RECOGNIZERS = {
    "EMAIL_ADDRESS": "EmailRecognizer", "PHONE_NUMBER": "PhoneRecognizer", "CREDIT_CARD": "CreditCardRecognizer",
    "IBAN_CODE": "IbanRecognizer", "IP_ADDRESS": "IpRecognizer", "US_SSN": "UsSsnRecognizer",
    "URL": "UrlRecognizer", "CRYPTO": "CryptoRecognizer", "MAC_ADDRESS": "MacAddressRecognizer",
    "DATE_TIME": "DateRecognizer", "US_PASSPORT": "UsPassportRecognizer", "US_BANK_NUMBER": "UsBankRecognizer",
    "US_DRIVER_LICENSE": "UsLicenseRecognizer", "US_ITIN": "UsItinRecognizer", "UK_NHS": "NhsRecognizer",
}


class PiiConfigError(ValueError):
    """An entity type the scanner has no offline recognizer for, or a threshold out of range."""


@dataclass(frozen=True)
class Span:
    """One finding: its entity type, where it is in the text, and the recognizer's score (never the value)."""

    entity_type: str
    start: int
    end: int
    score: float


def parse_entities(text: str) -> tuple[str, ...]:
    """A comma-separated list of entity types (``""`` or ``default``: DEFAULT_ENTITIES), checked."""
    names = tuple(dict.fromkeys(n.strip().upper() for n in text.split(",") if n.strip()))
    if not names or names == ("DEFAULT",):
        return DEFAULT_ENTITIES
    unknown = [n for n in names if n not in RECOGNIZERS]
    if unknown:
        raise PiiConfigError(f"entities: {', '.join(unknown)} not supported offline; choose from "
                             f"{', '.join(RECOGNIZERS)}")
    return names


def _email_recognizer() -> Any:
    """presidio's EmailRecognizer, validating domains against tldextract's bundled suffix list only."""
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    offline = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    return OfflineEmailRecognizer()


def _recognizer(entity: str) -> Any:
    if entity == "EMAIL_ADDRESS":
        return _email_recognizer()
    import presidio_analyzer.predefined_recognizers as predefined

    return getattr(predefined, RECOGNIZERS[entity])()


def _resolve(spans: list[Span]) -> list[Span]:
    """Overlapping findings reduced to one: the longer span wins, then the higher score (an email's domain is
    also a URL; a card number also looks like a phone number). What is left does not overlap."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), -s.score, s.start, s.entity_type)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


class PiiScanner:
    """Finds, counts and masks the chosen entity types in text."""

    def __init__(self, entities: Sequence[str] = DEFAULT_ENTITIES, threshold: float = DEFAULT_THRESHOLD) -> None:
        unknown = [e for e in entities if e not in RECOGNIZERS]
        if unknown:
            raise PiiConfigError(f"entities: {', '.join(unknown)} not supported offline")
        if not 0 < threshold <= 1:
            raise PiiConfigError(f"threshold {threshold}: must be in (0, 1]")
        self.entities = tuple(entities)
        self.threshold = threshold
        self._recognizers = [(e, _recognizer(e)) for e in self.entities]
        self._anonymizer: Any = None

    def spans(self, text: str) -> list[Span]:
        """The findings in ``text`` at or above the threshold, overlaps resolved."""
        found = [Span(r.entity_type, r.start, r.end, float(r.score))
                 for entity, recognizer in self._recognizers
                 for r in recognizer.analyze(text, [entity], nlp_artifacts=None)
                 if r.score >= self.threshold and r.entity_type in self.entities]
        return _resolve(found)

    def scan(self, texts: Iterable[str]) -> dict[str, int]:
        """Entity type -> how many findings in ``texts`` (types with none left out)."""
        counts: Counter[str] = Counter(s.entity_type for text in texts for s in self.spans(text))
        return dict(sorted(counts.items()))

    def mask(self, text: str, spans: Sequence[Span] | None = None) -> str:
        """``text`` with every finding (``spans``, when already found) replaced by ``<ENTITY_TYPE>``
        (presidio-anonymizer's replace operator)."""
        spans = self.spans(text) if spans is None else spans
        if not spans:
            return text
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        if self._anonymizer is None:
            self._anonymizer = AnonymizerEngine()
        results = [RecognizerResult(s.entity_type, s.start, s.end, s.score) for s in spans]
        # "replace" without new_value writes "<ENTITY_TYPE>"
        return str(self._anonymizer.anonymize(text, results, {"DEFAULT": OperatorConfig("replace")}).text)


@functools.cache
def scanner(entities: tuple[str, ...] = DEFAULT_ENTITIES, threshold: float = DEFAULT_THRESHOLD) -> PiiScanner:
    """One scanner per configuration (building the recognizers compiles their patterns)."""
    return PiiScanner(entities, threshold)


def scan(texts: Iterable[str], entities: Sequence[str] = DEFAULT_ENTITIES,
         threshold: float = DEFAULT_THRESHOLD) -> dict[str, int]:
    """Entity type -> count of findings in ``texts``."""
    return scanner(tuple(entities), threshold).scan(texts)


def mask(text: str, entities: Sequence[str] = DEFAULT_ENTITIES, threshold: float = DEFAULT_THRESHOLD) -> str:
    """``text`` with each finding replaced by ``<ENTITY_TYPE>``."""
    return scanner(tuple(entities), threshold).mask(text)
