"""A privacy proxy: find personal data, swap it for stable placeholders before text goes upstream, put it back after.

Rule detectors (with checksums where the format has one: Luhn for cards, mod-97 for IBANs)
cover emails, URLs, IBANs, cards, SSNs, IPs, dates and phones; suffix rules catch the plainly
written organisations and street addresses, and a learned span tagger (slmkit.collab.pii_tagger)
adds the other names, organisations and addresses. Placeholders look like
<PERSON_1>; the same value always gets the same placeholder within one request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

RULE_TYPES = ("EMAIL_ADDRESS", "URL", "IBAN_CODE", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "DATE_TIME", "PHONE_NUMBER")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    iban = text.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def card_ok(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 12 <= len(digits) <= 19 and luhn_ok(digits)


def ipv4_ok(text: str) -> bool:
    return all(int(part) <= 255 for part in text.split("."))


def phone_ok(text: str) -> bool:
    return 7 <= len(re.sub(r"\D", "", text)) <= 15


MONTHS = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
WEEKDAYS = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
DATE_PATTERNS = "|".join([  # full dates and times: checked before phones so "2000-04-16 11:34" is a date
    r"\b\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?\b",
    r"(?<![\d/.-])\d{1,2}([/.-])\d{1,2}\1\d{2,4}\b(?![/.-]\d)",
    rf"\b{MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b",
    rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{MONTHS}(?:,?\s+\d{{4}})?\b",
    rf"\b{MONTHS}\s+\d{{4}}\b",
    r"\b\d{1,2}:\d{2}(?::\d{2})?\s?(?:[ap]\.?m\.?)?\b",
])
LOOSE_DATE_PATTERNS = rf"\b{WEEKDAYS}\b|\b(?:1[6-9]|20)\d{{2}}\b"  # weekdays and bare years, after phones

# (label, pattern, validator) in priority order: earlier detectors win overlaps.
RULES: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("EMAIL_ADDRESS", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), None),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]"), None),
    ("IBAN_CODE", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok),
    ("CREDIT_CARD", re.compile(r"(?<![+\d])\d(?:[ -]?\d){11,18}\b"), card_ok),
    ("US_SSN", re.compile(r"\b\d{3}([- ])\d{2}\1\d{4}\b"), None),
    ("IP_ADDRESS", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)"), ipv4_ok),
    ("IP_ADDRESS", re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"), None),
    ("DATE_TIME", re.compile(DATE_PATTERNS, re.IGNORECASE), None),
    ("PHONE_NUMBER", re.compile(r"(?:\+\d{1,3}[ .-]?)?(?:\(0?\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]?\d{2,5}){0,4}(?:\s?x\d{1,5})?"), phone_ok),
    ("DATE_TIME", re.compile(LOOSE_DATE_PATTERNS, re.IGNORECASE), None),
]


CAPITALISED = r"[A-Z][\w'&.-]*"
ORG_SUFFIXES = (r"Inc\.?|Incorporated|LLC|L\.L\.C\.|Ltd\.?|Limited|Corp\.?|Corporation|Co\.|Company|GmbH|AG|PLC|plc|LLP|"
                r"Group|Holdings|Partners|Associates|Sons|Bank|University|College|Institute|Foundation|Agency|"
                r"Technologies|Systems|Solutions|Services|Software|Consulting|Labs")
STREET_SUFFIXES = (r"Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Drive|Dr\.?|Lane|Ln\.?|Place|Pl\.?|Court|Ct\.?|Boulevard|"
                   r"Blvd\.?|Way|Terrace|Circle|Parkway|Highway|Square|Crescent|Close|Row")

# Names the tagger also learns, when written the plain way: "Acme Widgets Inc.", "12 Baker Street", "Apt. 5".
ENTITY_RULES: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("ORGANIZATION", re.compile(rf"\b(?:{CAPITALISED}(?:,? (?:&|and|of) | |-)){{1,4}}?(?:{ORG_SUFFIXES})(?![\w-])"), None),
    ("STREET_ADDRESS", re.compile(rf"\b\d{{1,5}} (?:{CAPITALISED} ){{1,4}}?(?:{STREET_SUFFIXES})(?![\w-])"), None),
    ("STREET_ADDRESS", re.compile(r"\b(?:apt\.?|apartment|suite|ste\.?|unit|room|p\.?\s?o\.? box|psc)\s?#?\d+[a-z]?\b",
                                  re.IGNORECASE), None),
]


def detect_rules(text: str, rules: list = RULES) -> list[Span]:
    """Non-overlapping spans found by the rule and checksum detectors."""
    spans: list[Span] = []
    for label, pattern, valid in rules:
        for match in pattern.finditer(text):
            start, end = match.span()
            if valid is not None and not valid(match.group()):
                continue
            if not any(s.start < end and start < s.end for s in spans):
                spans.append(Span(start, end, label))
    return sorted(spans, key=lambda s: s.start)


def merge(primary: list[Span], secondary: list[Span], text: str) -> list[Span]:
    """`primary` spans plus what `secondary` spans cover outside them, so no detected text is left unredacted."""
    out = list(primary)
    for s in secondary:
        pieces = [(s.start, s.end)]
        for p in primary:
            pieces = [q for a, b in pieces for q in ((a, min(b, p.start)), (max(a, p.end), b)) if q[0] < q[1]]
        for a, b in pieces:
            while a < b and not text[a].isalnum():
                a += 1
            while b > a and (text[b - 1].isspace() or text[b - 1] in ",;:"):
                b -= 1
            if b > a:
                out.append(Span(a, b, s.label))
    return sorted(out, key=lambda s: s.start)


PLACEHOLDER = re.compile(r"<\s*([A-Z_]+?)_(\d+)\s*>")


class Redaction:
    """Value <-> placeholder map for one request, so a value keeps its placeholder across messages."""

    def __init__(self):
        self.by_value: dict[tuple[str, str], str] = {}
        self.by_placeholder: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def placeholder(self, label: str, value: str) -> str:
        key = (label, value)
        if key not in self.by_value:
            self.counts[label] = self.counts.get(label, 0) + 1
            tag = f"<{label}_{self.counts[label]}>"
            self.by_value[key] = tag
            self.by_placeholder[tag] = value
        return self.by_value[key]

    def apply(self, text: str, spans: list[Span]) -> str:
        out, last = [], 0
        for s in spans:
            out.append(text[last:s.start])
            out.append(self.placeholder(s.label, text[s.start:s.end]))
            last = s.end
        out.append(text[last:])
        return "".join(out)

    def restore(self, text: str) -> str:
        """Put every original value back, tolerating spaces inside the brackets."""
        def back(match: re.Match) -> str:
            tag = f"<{match.group(1)}_{match.group(2)}>"
            return self.by_placeholder.get(tag, match.group(0))
        return PLACEHOLDER.sub(back, text)


class PrivacyProxy:
    """Detect (rules, then an optional learned tagger) and redact; `redact_payload` also returns the restore function."""

    def __init__(self, tagger=None):
        self.tagger = tagger  # an object with .spans(text) -> list[Span], e.g. pii_tagger.SpanTagger

    @classmethod
    def default(cls, tagger_path: str | None = None, model=None, tokenizer=None) -> "PrivacyProxy":
        tagger = None
        if tagger_path:
            from slmkit.collab.pii_tagger import SpanTagger

            tagger = SpanTagger.load(tagger_path, model, tokenizer)
        return cls(tagger)

    def detect(self, text: str) -> list[Span]:
        spans = merge(detect_rules(text), detect_rules(text, ENTITY_RULES), text)
        if self.tagger is not None:
            spans = merge(spans, self.tagger.spans(text), text)
        return spans

    def redact(self, text: str, redaction: Redaction | None = None) -> tuple[str, Redaction]:
        redaction = redaction or Redaction()
        return redaction.apply(text, self.detect(text)), redaction

    def redact_payload(self, payload: dict) -> tuple[dict, Callable[[str], str]]:
        """Redact a chat {"messages": [...]} or completion {"prompt": str} payload with one shared map."""
        redaction = Redaction()
        if "messages" in payload:
            messages = [{**m, "content": self.redact(m["content"], redaction)[0]} for m in payload["messages"]]
            return {**payload, "messages": messages}, redaction.restore
        return {**payload, "prompt": self.redact(payload["prompt"], redaction)[0]}, redaction.restore
