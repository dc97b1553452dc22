"""Privacy proxy: checksum detectors, stable placeholders, restore, and what a real upstream receives."""

import json

import httpx
import openai
import pytest
import torch
from serving import ServerThread, one_thread, recording_upstream  # noqa: F401 (autouse fixture)
from tiny import save_tiny, tiny_model, tiny_tokenizer

from slmkit.collab.pii_tagger import (
    TAGS,
    SpanTagger,
    TaggerHead,
    bio_tags,
    evaluate_detector,
    spans_from_words,
    split_by_template,
    train_tagger,
    word_scores,
)
from slmkit.collab.privacy import ENTITY_RULES, PrivacyProxy, Redaction, Span, detect_rules, iban_ok, luhn_ok, merge
from slmkit.serve.build import build_app

TEXT = ("Mail jane.doe@example.com or call +1-984-182-0190. Card 4111 1111 1111 1111, IBAN GB82WEST12345698765432, "
        "SSN 460-89-9847, host 192.168.10.4, see https://example.org/a?b=1 on 2000-04-16 11:34:35.")


def labels(text):
    return {(text[s.start:s.end], s.label) for s in detect_rules(text)}


def test_rule_detectors_find_each_type():
    found = labels(TEXT)
    for value, label in [("jane.doe@example.com", "EMAIL_ADDRESS"), ("+1-984-182-0190", "PHONE_NUMBER"),
                         ("4111 1111 1111 1111", "CREDIT_CARD"), ("GB82WEST12345698765432", "IBAN_CODE"),
                         ("460-89-9847", "US_SSN"), ("192.168.10.4", "IP_ADDRESS"), ("https://example.org/a?b=1", "URL"),
                         ("2000-04-16 11:34:35", "DATE_TIME")]:
        assert (value, label) in found, (value, label, found)


def test_checksums_reject_lookalikes():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82WEST12345698765433")
    assert ("4111 1111 1111 1112", "CREDIT_CARD") not in labels("Card 4111 1111 1111 1112 here")
    assert not any(label == "IBAN_CODE" for _, label in labels("code GB82WEST12345698765433"))
    assert not any(label == "IP_ADDRESS" for _, label in labels("version 999.1.2.3"))


def test_entity_rules_find_plain_organisations_and_addresses():
    text = ("Then ask Acme Widgets Inc. and Johnson & Sons about 12 Baker Street, Apt. 5, or First National Bank "
            "at 221 North Oak Ave. Suite 300; mail P.O. Box 77.")
    found = {(text[s.start:s.end], s.label) for s in detect_rules(text, ENTITY_RULES)}
    assert found == {("Acme Widgets Inc.", "ORGANIZATION"), ("Johnson & Sons", "ORGANIZATION"),
                     ("12 Baker Street", "STREET_ADDRESS"), ("Apt. 5", "STREET_ADDRESS"),
                     ("First National Bank", "ORGANIZATION"), ("221 North Oak Ave.", "STREET_ADDRESS"),
                     ("Suite 300", "STREET_ADDRESS"), ("P.O. Box 77", "STREET_ADDRESS")}
    for plain in ("I went to the bank on the main street.", "We drove 12 miles down the road to the company.",
                  "The Incas built roads; Stan Lee wrote stories.", "Order 3 Large Boxes by Friday."):
        assert detect_rules(plain, ENTITY_RULES) == [], plain


def test_merge_keeps_what_a_rule_span_leaves_free():
    text = "Ship to 6556 106 Rue Ettatawer Apt. 409 today"
    phone = Span(8, 16, "PHONE_NUMBER")  # "6556 106": a phone-shaped house number
    address = Span(8, 39, "STREET_ADDRESS")
    merged = merge([phone], [address], text)
    assert [(text[s.start:s.end], s.label) for s in merged] == [("6556 106", "PHONE_NUMBER"),
                                                               ("Rue Ettatawer Apt. 409", "STREET_ADDRESS")]
    assert merge([Span(0, 4, "URL")], [Span(0, 4, "PERSON")], text) == [Span(0, 4, "URL")]


def one_hot(tags: list[str], sure: float = 1.0) -> torch.Tensor:
    """Tag probabilities putting `sure` on each named tag and the rest on O."""
    probs = torch.zeros(len(tags), len(TAGS))
    for i, tag in enumerate(tags):
        probs[i, TAGS.index(tag)] += sure
        probs[i, 0] += 1 - sure
    return probs


def tagged(text, offsets, probs, threshold=0.5):
    return [(text[s.start:s.end], s.label) for s in spans_from_words(word_scores(text, offsets, probs), threshold)]


def test_spans_cover_whole_words():
    text = "Billing Ann Lee"
    offsets = [(0, 1), (1, 7), (7, 11), (11, 15)]  # "B" "illing" " Ann" " Lee": a word split in two tokens
    assert tagged(text, offsets, one_hot(["O", "O", "B-PERSON", "I-PERSON"])) == [("Ann Lee", "PERSON")]
    # one token of a word tagged is enough to hide the whole word
    assert tagged(text, offsets, one_hot(["O", "B-ORGANIZATION", "B-PERSON", "I-PERSON"])) == [
        ("Billing", "ORGANIZATION"), ("Ann Lee", "PERSON")]
    assert tagged(text, offsets, one_hot(["B-PERSON", "I-PERSON", "O", "O"])) == [("Billing", "PERSON")]
    assert tagged(text, offsets, one_hot(["O", "O", "B-PERSON", "B-PERSON"])) == [("Ann", "PERSON"), ("Lee", "PERSON")]


def test_threshold_and_unsure_band():
    text = "Billing Ann Lee"
    offsets = [(0, 7), (7, 11), (11, 15)]
    probs = torch.cat([one_hot(["O"]), one_hot(["B-PERSON"], 0.4), one_hot(["I-PERSON"], 0.95)])
    words = word_scores(text, offsets, probs)
    assert [round(w.p, 2) for w in words] == [0.0, 0.4, 0.95]
    assert tagged(text, offsets, probs, threshold=0.5) == [("Lee", "PERSON")]
    assert tagged(text, offsets, probs, threshold=0.3) == [("Ann Lee", "PERSON")]
    tagger = SpanTagger(None, None, TaggerHead(4, 2), 0, low=0.3, high=0.9)
    assert [tagger.unsure(w) for w in words] == [False, True, False]


def test_placeholders_are_stable_and_restored():
    proxy = PrivacyProxy()
    redaction = Redaction()
    a, _ = proxy.redact("write to a@b.com and a@b.com, cc c@d.org", redaction)
    assert a == "write to <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_1>, cc <EMAIL_ADDRESS_2>"
    b, _ = proxy.redact("again a@b.com", redaction)
    assert b == "again <EMAIL_ADDRESS_1>"
    assert redaction.restore("Sent to < EMAIL_ADDRESS_2 > and <EMAIL_ADDRESS_1>.") == "Sent to c@d.org and a@b.com."


def test_rule_recall_on_presidio_split(shared_data):
    records = json.loads((shared_data / "safety/pii/presidio_synth_dataset_v2.json").read_text())
    _, test = split_by_template(records)
    report = evaluate_detector(detect_rules, test)
    for kind in ("EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "DATE_TIME", "PHONE_NUMBER", "URL"):
        if kind in report and report[kind]["support"]:
            assert report[kind]["recall"] >= 0.95, (kind, report[kind])


def test_bio_roundtrip_and_tiny_tagger(tmp_path):
    tok = tiny_tokenizer()
    text = "Contact Ann Lee at Acme Corp today"
    spans = [{"entity_type": "PERSON", "start_position": 8, "end_position": 15},
             {"entity_type": "ORGANIZATION", "start_position": 19, "end_position": 28}]
    offsets = [tuple(o) for o in tok(text, return_offsets_mapping=True)["offset_mapping"]]
    tags = [TAGS[t] for t in bio_tags(offsets, spans)]
    assert set(tagged(text, offsets, one_hot(tags))) == {("Ann Lee", "PERSON"), ("Acme Corp", "ORGANIZATION")}
    model = tiny_model("llama")
    records = [{"full_text": f"Contact {n} at Acme Corp today", "template_id": i % 3,
                "spans": [{"entity_type": "PERSON", "start_position": 8, "end_position": 8 + len(n)}]}
               for i, n in enumerate(["Ann Lee", "Bob Ray", "Cy Twombly", "Di Fox"] * 3)]
    tagger = train_tagger(model, tok, records, epochs=15, lr=2e-2, batch_size=2, width=16)
    tagger.save(tmp_path / "t.pt")
    again = SpanTagger.load(tmp_path / "t.pt", model, tok)
    assert again.spans(text) == tagger.spans(text)
    assert evaluate_detector(tagger.spans, records)["PERSON"]["recall"] > 0.5


def test_privacy_proxy_over_http_sends_no_raw_pii(tmp_path):
    upstream_app, received = recording_upstream()
    with ServerThread(upstream_app) as upstream:
        app = build_app(str(save_tiny(tmp_path / "tiny")), upstream=upstream.url, upstream_model="big", privacy=True,
                        name="tiny")
        with ServerThread(app) as local:
            client = openai.OpenAI(base_url=local.url, api_key="x", max_retries=0)
            reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": TEXT}], max_tokens=50)
            raw = client.with_options().chat.completions.with_raw_response.create(
                model="tiny", messages=[{"role": "user", "content": "mail me at z@q.io"}], max_tokens=5)
            assert raw.headers["x-answered-by"] == "upstream"
            stats = httpx.get(local.url + "/stats").json()
    sent = json.dumps(received)
    for secret in ("jane.doe@example.com", "4111 1111 1111 1111", "GB82WEST12345698765432", "460-89-9847",
                   "192.168.10.4", "984-182-0190", "z@q.io"):
        assert secret not in sent
    assert "<EMAIL_ADDRESS_1>" in received[0]["messages"][0]["content"]
    assert reply.choices[0].message.content == "echo: " + TEXT  # every placeholder restored
    assert reply.model_extra["answered_by"] == "upstream"
    assert stats["upstream_calls"] == 2 and stats["upstream_prompt_tokens"] == 22


def test_synthetic_records_mark_their_values():
    from slmkit.collab.pii_synth import TEMPLATES, synthetic_records

    records = synthetic_records(300, seed=1)
    assert len({r["template_id"] for r in records}) > len(TEMPLATES) // 2
    kinds = {s["entity_type"] for r in records for s in r["spans"]}
    assert kinds == {"PERSON", "ORGANIZATION", "STREET_ADDRESS", "GPE"}
    for r in records:
        text = r["full_text"]
        for s in r["spans"]:
            value = text[s["start_position"]:s["end_position"]]
            assert value and value == value.strip() and "{" not in value, (text, value)
        assert "{" not in text
    assert synthetic_records(5, seed=2) == synthetic_records(5, seed=2)


def test_builtin_tagger_is_trained_once_per_model_and_cached(tmp_path, monkeypatch):
    from slmkit.collab import pii_tagger

    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))
    model, tok = tiny_model("llama"), tiny_tokenizer()
    first = pii_tagger.builtin_tagger(model, tok, records=24)
    cached = list((tmp_path / "pii").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("builtin-")
    monkeypatch.setattr(pii_tagger, "train_tagger", lambda *a, **k: pytest.fail("retrained a cached tagger"))
    again = pii_tagger.builtin_tagger(model, tok, records=24)
    text = "Ship it to Ann Lee at 12 Oak Street"
    assert again.words(text) == first.words(text)
    other = tiny_model("llama", seed=5)
    assert pii_tagger.model_fingerprint(other) != pii_tagger.model_fingerprint(model)
