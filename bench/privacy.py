"""Privacy proxy leak rates: what a recording upstream behind `slm serve --privacy` receives, per entity type.

    python bench/privacy.py                       # train the tagger on the training templates, then measure
    python bench/privacy.py --tagger T.pt         # measure a tagger trained before on the same split
    python bench/privacy.py --synthetic 2000      # train on them plus 2000 of slmkit's synthetic sentences
    python bench/privacy.py --tagger builtin      # the built-in tagger (synthetic sentences only, no presidio data)
    python bench/privacy.py --no-tagger           # rules only (`--privacy` without `--privacy-tagger`)

The presidio synthetic set (../shared/data/safety/pii/presidio_synth_dataset_v2.json) is split by
`template_id`: a fifth of the templates (seed 0) are held out, and the tagger (slmkit.collab.pii_tagger
on SmolLM2-135M's frozen hidden states) is trained on the other templates only. Every held-out
record is then sent as one chat message to the real server, built as `slm serve smollm2-135m
--upstream URL --privacy-tagger T.pt` builds it, in front of a recording upstream on loopback that
echoes what it gets. A gold value has leaked when one of its identifying words reaches the upstream:
the upstream's text holds that word (whole word, any case) more often than the record's text outside
its gold spans does. Identifying words are the value's words of two or more characters that are not
structure words (street and company suffixes, "Apt", "Suite", titles, articles; GENERIC below). The
value also counts as an exact leak when it arrives verbatim. Every answer must come back as the text
that was sent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
DATA = Path(os.environ.get("SLMKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
PII_FILE = DATA / "safety/pii/presidio_synth_dataset_v2.json"

import httpx  # noqa: E402

RULE_TARGET = ("CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "URL", "IP_ADDRESS")
LEARNED_TARGET = ("PERSON", "ORGANIZATION", "STREET_ADDRESS")
ALIASES = {"DOMAIN_NAME": "URL"}  # the dataset's URLs are labelled DOMAIN_NAME
GENERIC = frozenset("""
apt apartment suite ste unit box po psc apo fpo dpo room floor fl street st road rd avenue ave av lane ln drive dr
boulevard blvd way court ct place pl square sq terrace circle parkway highway crescent close row rue via calle
avenida strasse straße gade vej inc incorporated ltd limited llc corp corporation co company group plc gmbh ag sa
llp mr mrs ms miss dr prof sir the of and de del la le les du des da do dos das di van von der den el al
""".split())


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def identifying_words(value: str) -> list[str]:
    return sorted({w for w in words(value) if len(w) >= 2 and w not in GENERIC})


def outside_words(text: str, spans: list[dict]) -> list[str]:
    """The words of a record outside all its gold spans."""
    background = list(text)
    for s in spans:
        background[s["start_position"]:s["end_position"]] = " " * (s["end_position"] - s["start_position"])
    return words("".join(background))


def leaks(text: str, spans: list[dict], received: str) -> list[tuple[str, bool, bool]]:
    """(entity type, leaked, leaked verbatim) for each gold span of a record, given the text the upstream got."""
    outside = outside_words(text, spans)
    got = words(received)
    out = []
    for s in spans:
        value = text[s["start_position"]:s["end_position"]]
        leaked = any(got.count(w) > outside.count(w) for w in identifying_words(value))
        out.append((ALIASES.get(s["entity_type"], s["entity_type"]), leaked, value in received))
    return out


def leak_table(records: list[dict], received: list[str]) -> list[dict]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for record, got in zip(records, received):
        for kind, leaked, exact in leaks(record["full_text"], record["spans"], got):
            c = counts[kind]
            c[0], c[1], c[2] = c[0] + 1, c[1] + leaked, c[2] + exact
    rows = []
    for kind, (n, leaked, exact) in sorted(counts.items()):
        target = "0%" if kind in RULE_TARGET else "≤ 5%" if kind in LEARNED_TARGET else "-"
        rows.append({"entity": kind, "values": n, "leaked": leaked, "leak_rate": leaked / n,
                     "verbatim": exact, "target": target})
    return rows


def kept_rate(records: list[dict], received: list[str]) -> float:
    """Share of the words outside gold spans (two characters or more) that still reach the upstream: 1 - over-redaction."""
    total = kept = 0
    for record, got in zip(records, received):
        outside = [w for w in outside_words(record["full_text"], record["spans"]) if len(w) >= 2]
        arrived = words(got)
        total += len(outside)
        kept += sum(min(outside.count(w), arrived.count(w)) for w in set(outside))
    return kept / total


def train(records: list[dict], out: Path, epochs: int, seed: int, synthetic: int) -> Path:
    """A tagger trained on `records` plus `synthetic` of slmkit's own synthetic sentences."""
    import torch

    from slmkit.collab.pii_synth import synthetic_records
    from slmkit.collab.pii_tagger import train_tagger
    from slmkit.models.loading import load

    net, tokenizer = load("smollm2-135m")
    torch.manual_seed(seed)
    start = time.perf_counter()
    data = records + synthetic_records(synthetic, seed) if synthetic else records
    tagger = train_tagger(net, tokenizer, data, epochs=epochs, seed=seed)
    path = out / "pii_tagger.pt"
    tagger.save(path)
    print(f"tagger trained on {len(records)} + {synthetic} synthetic records in {time.perf_counter() - start:.0f} s "
          f"-> {path}", flush=True)
    return path


def through_proxy(records: list[dict], tagger: str | None, strict: bool = False) -> tuple[list[str], int, int]:
    """Send each record through the real privacy server: the text the upstream received for each ("" when the
    strict server refused it), how many answers came back restored exactly, and how many were refused."""
    from serving import ServerThread, recording_upstream

    from slmkit.serve.build import build_app

    upstream_app, received = recording_upstream()
    texts, restored, refused = [], 0, 0
    with ServerThread(upstream_app) as upstream:
        app = build_app("smollm2-135m", upstream=upstream.url, upstream_model="big", privacy=True,
                        privacy_tagger=tagger, privacy_strict=strict, name="m")
        with ServerThread(app) as proxy, httpx.Client(timeout=120) as http:
            for record in records:
                reply = http.post(proxy.url + "/chat/completions", json={
                    "model": "m", "messages": [{"role": "user", "content": record["full_text"]}], "max_tokens": 16})
                if strict and reply.status_code == 400 and reply.json()["error"]["code"] == "privacy_uncertain":
                    refused += 1
                    texts.append("")
                    continue
                reply.raise_for_status()
                restored += reply.json()["choices"][0]["message"]["content"] == "echo: " + record["full_text"]
                texts.append(received[-1]["messages"][0]["content"])
    return texts, restored, refused


def fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    from slmkit.collab.pii_tagger import split_by_template

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tagger", help="a tagger file trained on the same split, or 'builtin' (default: train one)")
    parser.add_argument("--synthetic", type=int, default=0, help="add this many slmkit synthetic sentences to training")
    parser.add_argument("--no-tagger", action="store_true", help="rules only")
    parser.add_argument("--strict", action="store_true", help="serve with --privacy-strict; count the refusals")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="/tmp/slmkit-bench-privacy")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = json.loads(PII_FILE.read_text())
    train_records, test_records = split_by_template(records, args.test_fraction, args.seed)
    tagger = None if args.no_tagger else args.tagger or str(train(train_records, out, args.epochs, args.seed,
                                                                                args.synthetic))
    received, restored, refused = through_proxy(test_records, tagger, args.strict)
    rows = leak_table(test_records, received)
    templates = len({r["template_id"] for r in test_records})
    print(f"## privacy proxy leaks ({len(train_records)} training records; {len(test_records)} held-out records "
          f"from {templates} unseen templates; tagger: {tagger or 'none'})")
    print("| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(fmt(v) for v in row.values()) + " |")
    kept = kept_rate(test_records, received)
    print(f"\nanswers restored exactly: {restored}/{len(test_records) - refused}; words outside gold spans that reach "
          f"the upstream unchanged: {kept:.1%}" + (f"; refused by --privacy-strict: {refused}" if args.strict else ""))
    (out / "results.json").write_text(json.dumps({"rows": rows, "restored": restored, "test": len(test_records),
                                                  "kept": kept, "refused": refused}, indent=2))


if __name__ == "__main__":
    main()
