"""A privacy proxy: find personal data, swap it for placeholders before a request goes upstream, put it back after.

Rule detectors (with checksums where the format has one: Luhn for cards, mod-97 for IBANs)
cover e-mails, URLs, IBANs, cards, SSNs, IPs, dates, phones and post codes; suffix rules and a
list of places catch plainly written organisations, street addresses, cities and countries, and
a learned span tagger (slmkit.collab.pii_tagger) adds the other names, organisations and
addresses. Placeholders look like <PERSON_1>; one value keeps one placeholder within a request.
Text in the request that already looks like a placeholder is itself replaced by a fresh one, so
no user text can collide with a placeholder, and every answer is restored exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from slmkit.collab.places import PLACES
from slmkit.errors import SlmError

RULE_TYPES = ("EMAIL_ADDRESS", "URL", "IBAN_CODE", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "DATE_TIME", "PHONE_NUMBER",
              "ZIP_CODE")
# What goes upstream in clear without a tagger: names written without a recognisable suffix or title.
UNTAGGED_TYPES = ("PERSON", "ORGANIZATION without a suffix such as Inc. or Bank",
                  "STREET_ADDRESS without a number and street suffix", "GPE (places not in the built-in list)")


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
    r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\b\.?)?",
])
LOOSE_DATE_PATTERNS = rf"\b{WEEKDAYS}\b|\b(?:1[6-9]|20)\d{{2}}\b"  # weekdays and bare years, after phones
TLDS = r"(?:com|org|net|edu|gov|mil|int|info|biz|io|ai|app|dev|co)"
POSTCODES = "|".join([
    r"\b(?:GIR ?0AA|[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})\b",  # UK: NW1 6XE, SW1A 1AA
    r"\b[A-Z]\d[A-Z] ?\d[A-Z]\d\b",  # Canada: B0J 2H0
    r"(?i:\b(?:zip(?: ?code)?|postal code|post ?code)(?: is|:)?\s+)(?P<value>[A-Z0-9][A-Z0-9 -]{1,8}[A-Z0-9])\b",  # "zip code is 2371"
    r"\b\d{5}-\d{4}\b",  # US ZIP+4
    r"\b[A-Z]{1,2}-\d{4,5}\b",  # with a country prefix: D-10115, CH-8001
    r"\b\d{4} ?(?!AD\b|BC\b|CE\b|AM\b|PM\b)[A-Z]{2}\b",  # Dutch: 1012 AB
    r"\b\d{2}-\d{3}\b",  # Polish: 53-320
    r"(?<=\b[A-Z]{2} )\d{5}\b",  # after a state code: CO 80202
])

# (label, pattern, validator) in priority order: earlier detectors win overlaps.
RULES: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("EMAIL_ADDRESS", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), None),
    ("URL", re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]"), None),
    ("URL", re.compile(rf"\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.{TLDS}(?:\.[a-z]{{2}})?\b(?:/[^\s<>\"']*[^\s<>\"'.,;:!?)])?"),
     None),
    ("IBAN_CODE", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok),
    ("CREDIT_CARD", re.compile(r"(?<![+\d])\d(?:[ -]?\d){11,18}\b"), card_ok),
    ("US_SSN", re.compile(r"\b\d{3}([- ])\d{2}\1\d{4}\b"), None),
    ("IP_ADDRESS", re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)"), ipv4_ok),
    ("IP_ADDRESS", re.compile(r"(?<![\w:])(?:(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|"  # full, or shortened with ::
                              r"(?:[0-9a-fA-F]{1,4}:){0,6}:(?::?[0-9a-fA-F]{1,4}){1,7}|(?:[0-9a-fA-F]{1,4}:){1,7}:)(?![\w:])"), None),
    ("DATE_TIME", re.compile(DATE_PATTERNS, re.IGNORECASE), None),
    ("ZIP_CODE", re.compile(POSTCODES), None),
    ("PHONE_NUMBER", re.compile(r"(?:\+\d{1,3}[ .-]?)?(?:\(0?\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{2,5}){0,4}(?:\s?x\d{1,5})?"), phone_ok),
    ("DATE_TIME", re.compile(LOOSE_DATE_PATTERNS, re.IGNORECASE), None),
]


CAPITALISED = r"[A-Z][\w'&.-]*"
ORG_SUFFIXES = (r"Inc\.?|Incorporated|LLC|L\.L\.C\.|Ltd\.?|Limited|Corp\.?|Corporation|Co\.|Company|GmbH|AG|PLC|plc|LLP|"
                r"Group|Holdings|Partners|Associates|Sons|Bank|University|College|Institute|Foundation|Agency|"
                r"Technologies|Systems|Solutions|Services|Software|Consulting|Labs")
STREET_SUFFIXES = (r"Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Drive|Dr\.?|Lane|Ln\.?|Place|Pl\.?|Court|Ct\.?|Boulevard|"
                   r"Blvd\.?|Way|Terrace|Circle|Parkway|Highway|Square|Crescent|Close|Row")
PLACE_NAMES = "|".join(re.escape(p) for p in PLACES)
CITY = r"[A-ZÀ-Þ][\w'-]+(?:[ -][A-ZÀ-Þ][\w'-]+)?"

# Names the tagger also learns, when written the plain way: "Acme Widgets Inc.", "221B Baker Street", "Apt. 5",
# "Puruntie 82", "10115 Berlin", "Uruguay 64677", "Paris". Where a pattern has a group named `value`, only that
# group is the span (the rest is context).
FUNCTION_WORDS = r"(?:and|or|to|of|in|on|at|the|by|for|from|with|than|times|per|plus|minus|out|is|are|was|were)"
ENTITY_RULES: list[tuple[str, re.Pattern, Callable[[str], bool] | None]] = [
    ("ORGANIZATION", re.compile(rf"\b(?:{CAPITALISED}(?:,? (?:&|and|of) | |-)){{1,4}}?(?:{ORG_SUFFIXES})(?![\w-])"), None),
    ("STREET_ADDRESS", re.compile(rf"\b\d{{1,5}}[A-Za-z]? (?:{CAPITALISED} ){{1,4}}?(?:{STREET_SUFFIXES})(?![\w-])"), None),
    ("STREET_ADDRESS", re.compile(r"\b(?:apt\.?|apartment|suite|ste\.?|unit|room|p\.?\s?o\.? box|psc)\s?#?\d+[a-z]?\b",
                                  re.IGNORECASE), None),
    ("STREET_ADDRESS", re.compile(rf"\b\d{{1,5}} (?!{FUNCTION_WORDS}\b)[^\W\d_][\w'.-]{{2,}}(?: (?!{FUNCTION_WORDS}\b)[^\W\d_][\w'.-]*){{0,3}} "
                                  r"\d{1,4}[a-zA-Z]?\b(?! ?\d)"), None),
    ("GPE", re.compile(rf"\b\d{{5}} (?P<value>{CITY})"), None),  # the city after a post code
    ("ZIP_CODE", re.compile(r"\b\d{5}(?= [A-ZÀ-Þ][\w'-]+)"), None),
    ("ZIP_CODE", re.compile(rf"(?<![\w-])(?:{PLACE_NAMES}|{PLACE_NAMES.upper()}),? (?P<value>\d{{4,5}})\b"), None),
    ("GPE", re.compile(rf"(?<![\w-])(?:{PLACE_NAMES})(?![\w-])"), None),
    ("GPE", re.compile(rf"(?<![\w-])(?:{PLACE_NAMES.upper()})(?![\w-])"), None),
]


def detect_rules(text: str, rules: list = RULES, taken: list[Span] = ()) -> list[Span]:
    """Non-overlapping spans found by the rule and checksum detectors, after the `taken` ones (kept first)."""
    spans: list[Span] = list(taken)
    for label, pattern, valid in rules:
        def accept(start: int, end: int, valid=valid) -> bool:
            return (valid is None or valid(text[start:end])) and not any(s.start < end and start < s.end for s in spans)

        spans.extend(Span(start, end, label) for start, end in matches(pattern, text, accept))
    return sorted(spans, key=lambda s: s.start)


def matches(pattern: re.Pattern, text: str, accept: Callable[[int, int], bool]):
    """(start, end) of each accepted match (of its `value` group when it has one). A match that is not accepted
    gives way to its longest accepted prefix, else to matches starting later, so a card right after other digits
    ("14 4111 1111 1111 1111") or a phone right after an IP address is still found."""
    pos = 0
    while (match := pattern.search(text, pos)) is not None:
        start, end = match.span("value") if match.groupdict().get("value") is not None else match.span()
        if not accept(start, end):
            end = next((e for e in range(end - 1, start, -1) if pattern.fullmatch(text, start, e) and accept(start, e)),
                       None)
            if end is None:
                pos = match.start() + 1
                continue
        yield start, end
        pos = max(end, match.start() + 1)


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


NAME_TYPES = frozenset({"PERSON", "ORGANIZATION", "STREET_ADDRESS", "GPE"})
NEXT_CAPITALISED = re.compile(r" [A-ZÀ-Þ][a-zß-ÿ'’]+(?:-[A-ZÀ-Þ]?[a-zß-ÿ'’]+)*(?![\w-])")


def extend_names(text: str, spans: list[Span]) -> list[Span]:
    """A name runs on over the capitalised words right after it ("Roadify" -> "Roadify Transit"); in text
    written all in one case capitals say nothing, so nothing changes there."""
    if text.isupper() or text.islower():
        return spans
    out = []
    for i, span in enumerate(spans):
        end, limit = span.end, spans[i + 1].start if i + 1 < len(spans) else len(text)
        while span.label in NAME_TYPES and (match := NEXT_CAPITALISED.match(text, end)) and match.end() <= limit:
            end = match.end()
        out.append(Span(span.start, end, span.label))
    return out


PLACEHOLDER = re.compile(r"<\s*([A-Z_]+?)_(\d+)\s*>")


def placeholder_lookalikes(text: str) -> list[Span]:
    """User text shaped like a placeholder: it is replaced too, so it cannot be confused with one."""
    return [Span(m.start(), m.end(), m.group(1)) for m in PLACEHOLDER.finditer(text)]


class Redaction:
    """Value <-> placeholder map for one request, so a value keeps its placeholder across messages and fields."""

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
        """Put every original value back (in one pass, so a restored value is never read again), tolerating spaces
        inside the brackets."""
        def back(match: re.Match) -> str:
            tag = f"<{match.group(1)}_{match.group(2)}>"
            return self.by_placeholder.get(tag, match.group(0))
        return PLACEHOLDER.sub(back, text)

    def restore_all(self, value: Any) -> Any:
        """`restore` on every string inside a JSON value (an answer's tool calls, say)."""
        if isinstance(value, str):
            return self.restore(value)
        if isinstance(value, list):
            return [self.restore_all(v) for v in value]
        if isinstance(value, dict):
            return {self.restore_all(k): self.restore_all(v) for k, v in value.items()}
        return value


class PrivacyUncertain(SlmError):
    """In strict mode: the tagger cannot tell whether some words are personal data."""

    def __init__(self, text: str, words: list):
        shown = ", ".join(f"{text[w.start:w.end]!r} ({w.label} {w.p:.2f})" for w in words[:5])
        super().__init__(f"the privacy tagger is unsure whether {shown} is personal data; nothing was sent upstream "
                         "(rephrase, or serve without --privacy-strict)")


# Keys of the OpenAI request schema: their names pass as they are (their values still go through the redactor,
# except those of ENUM_KEYS, which the server validated against fixed choices).
SCHEMA_KEYS = frozenset({
    "messages", "role", "content", "name", "tool_calls", "tool_call_id", "id", "type", "function", "arguments",
    "text", "prompt", "stop", "user", "metadata", "tools", "tool_choice", "description", "parameters", "strict",
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "properties", "required", "items",
    "enum", "additionalProperties", "anyOf", "oneOf", "allOf", "default", "format", "minimum", "maximum",
})
ENUM_KEYS = frozenset({"role", "type"})


class PrivacyProxy:
    """Detect (rules, then an optional learned tagger) and redact; `redact_body` covers a whole upstream request."""

    def __init__(self, tagger=None, strict: bool = False):
        if strict and tagger is None:
            raise SlmError("--privacy-strict needs --privacy-tagger (the thresholds it checks are the tagger's)")
        self.tagger = tagger  # an object with .words(text) and .spans_of(words), e.g. pii_tagger.SpanTagger
        self.strict = strict

    def detect(self, text: str) -> list[Span]:
        spans = detect_rules(text, RULES, taken=placeholder_lookalikes(text))
        spans = merge(spans, detect_rules(text, ENTITY_RULES), text)
        if self.tagger is None:
            return extend_names(text, spans)
        words = self.tagger.words(text)
        if self.strict:
            unsure = [w for w in words if self.tagger.unsure(w) and not any(s.start <= w.start and w.end <= s.end
                                                                           for s in spans)]
            if unsure:
                raise PrivacyUncertain(text, unsure)
        return extend_names(text, merge(spans, self.tagger.spans_of(text, words), text))

    def redact(self, text: str, redaction: Redaction | None = None) -> tuple[str, Redaction]:
        redaction = redaction or Redaction()
        return redaction.apply(text, self.detect(text)), redaction

    def redact_body(self, body: dict, redaction: Redaction | None = None) -> tuple[dict, Redaction]:
        """Every string of an upstream request body, at any depth, through one shared map: values, and keys that are
        not the schema's own (metadata keys, tool parameter names). Numbers and booleans pass as they are."""
        redaction = redaction or Redaction()
        seen: dict[str, str] = {}

        def text(value: str) -> str:
            if value not in seen:
                seen[value] = self.redact(value, redaction)[0]
            return seen[value]

        def walk(value, key: str | None = None):
            if isinstance(value, str):
                return value if key in ENUM_KEYS else text(value)
            if isinstance(value, list):
                return [walk(v, key) for v in value]
            if isinstance(value, dict):
                return {(k if k in SCHEMA_KEYS else text(k)): walk(v, k) for k, v in value.items()}
            return value

        return walk(body), redaction

    def redact_payload(self, payload: dict) -> tuple[dict, Callable[[str], str]]:
        """Redact a chat {"messages": [...]} or completion {"prompt": str} payload; returns the restore function."""
        body, redaction = self.redact_body(payload)
        return body, redaction.restore
