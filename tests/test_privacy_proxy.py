"""The privacy proxy behind a recording upstream: no rule-detected value and no stop string leaves, every answer comes back.

Values are generated (Luhn-valid cards, mod-97-valid IBANs, phones, addresses, ...) and put into every
field a client can send: messages of every role, names, tool calls and tool definitions, the prompt,
`stop`, `user` and `metadata`.
"""

import json
import random

import httpx
import openai
import pytest
from serving import ServerThread, one_thread, recording_upstream  # noqa: F401 (autouse fixture)
from tiny import save_tiny

from slmkit.collab.pii_tagger import WordScore
from slmkit.collab.privacy import PrivacyProxy
from slmkit.errors import SlmError
from slmkit.serve.build import build_app
from slmkit.serve.routing import Collaboration


def luhn_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def card(rng) -> str:
    body = rng.choice("3456") + "".join(rng.choice("0123456789") for _ in range(rng.choice([11, 14, 15]) - 1))
    number = body + luhn_digit(body)
    return " ".join(number[i:i + 4] for i in range(0, len(number), 4)) if rng.random() < 0.5 else number


def iban(rng) -> str:
    bank = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4))
    account = "".join(rng.choice("0123456789") for _ in range(14))
    digits = "".join(str(int(c, 36)) for c in bank + account + "GB00")
    return f"GB{98 - int(digits) % 97:02d}{bank}{account}"


def phone(rng) -> str:
    d = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    return rng.choice([f"+1-{d(3)}-{d(3)}-{d(4)}", f"({d(3)}) {d(3)}-{d(4)}", f"+44 {d(4)} {d(6)}",
                       f"+46 (0)8 {d(3)} {d(3)} {d(2)}", f"0{d(3)} {d(2)} {d(2)} {d(2)}", f"{d(3)}.{d(3)}.{d(4)}"])


def rule_values(rng) -> dict[str, str]:
    """One fresh value of every rule-detected type."""
    d = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    word = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(4, 9)))  # noqa: E731
    return {
        "EMAIL_ADDRESS": f"{word()}.{word()}@{word()}.com",
        "URL": rng.choice([f"https://{word()}.org/{word()}?q={d(3)}", f"www.{word()}.net", f"{word()}.com"]),
        "IBAN_CODE": iban(rng),
        "CREDIT_CARD": card(rng),
        "US_SSN": f"{d(3)}-{d(2)}-{d(4)}",
        "IP_ADDRESS": rng.choice([".".join(str(rng.randint(1, 255)) for _ in range(4)),
                                  ":".join(f"{rng.randint(0, 65535):x}" for _ in range(8))]),
        "PHONE_NUMBER": phone(rng),
        "DATE_TIME": f"20{d(2)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "ZIP_CODE": rng.choice([f"NW{rng.randint(1, 9)} {rng.randint(1, 9)}XE", f"{d(5)}-{d(4)}"]),
    }


FILLER = "please check the note about the order and reply to me with what you think of it today".split()


def sentence(rng, values: list[str]) -> str:
    words = rng.sample(FILLER, 6)
    for value in values:
        words.insert(rng.randrange(len(words) + 1), value)
    return " ".join(words) + "."


def test_generated_values_are_detected_and_restored_exactly():
    rng = random.Random(0)
    proxy = PrivacyProxy()
    for _ in range(200):
        values = list(rule_values(rng).values())
        text = sentence(rng, rng.sample(values, 4) + ["<EMAIL_ADDRESS_1>", "< PERSON_2 >"])
        redacted, redaction = proxy.redact(text)
        assert not any(v in redacted for v in values), redacted
        assert redaction.restore(redacted) == text


def test_post_codes_and_cities():
    text = "Send it to 221B Baker Street, London NW1 6XE, or to 10115 Berlin, or to Montevideo, Uruguay 64677."
    found = {(text[s.start:s.end], s.label) for s in PrivacyProxy().detect(text)}
    assert {("221B Baker Street", "STREET_ADDRESS"), ("London", "GPE"), ("NW1 6XE", "ZIP_CODE"), ("10115", "ZIP_CODE"),
            ("Berlin", "GPE"), ("Montevideo", "GPE"), ("Uruguay", "GPE"), ("64677", "ZIP_CODE")} <= found
    plain = "Order 12 items by Friday; between 5 and 10 apples, 3 times 4; std::vector in C++ 17 at 10:30."
    assert [(plain[s.start:s.end], s.label) for s in PrivacyProxy().detect(plain)] == [
        ("Friday", "DATE_TIME"), ("10:30", "DATE_TIME")]


def every_field_request(rng) -> tuple[dict, list[str], list[str]]:
    """A chat request with a rule-detected value in every field a client can fill, its values and its stops."""
    v = [rule_values(rng) for _ in range(4)]
    values = [x for vs in v for x in vs.values()]
    stops = [f"stop-{v[0]['US_SSN']}", "END OF ANSWER"]
    arguments = json.dumps({"to": v[1]["EMAIL_ADDRESS"], "card": v[1]["CREDIT_CARD"]})
    body = {
        "model": "tiny", "max_tokens": 20, "stop": stops, "user": v[2]["EMAIL_ADDRESS"],
        "metadata": {v[2]["PHONE_NUMBER"]: v[2]["IBAN_CODE"], "session": v[2]["IP_ADDRESS"]},
        "tools": [{"type": "function", "function": {
            "name": "send", "description": f"send to {v[3]['URL']} or {v[3]['PHONE_NUMBER']}",
            "parameters": {"type": "object", "properties": {"to": {"type": "string", "enum": [v[3]["EMAIL_ADDRESS"]]}}}}}],
        "messages": [
            {"role": "system", "content": f"You serve {v[0]['EMAIL_ADDRESS']} from {v[0]['IP_ADDRESS']}."},
            {"role": "developer", "content": [{"type": "text", "text": f"card {v[0]['CREDIT_CARD']}"}]},
            {"role": "user", "name": v[3]["US_SSN"], "content": sentence(rng, [v[0]["PHONE_NUMBER"], v[0]["IBAN_CODE"]])},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "send", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": f"sent on {v[1]['DATE_TIME']} to {v[1]['ZIP_CODE']}"},
            {"role": "user", "content": sentence(rng, [v[3]["IBAN_CODE"], v[3]["CREDIT_CARD"], "<URL_1>",
                                                      v[1]["URL"], v[2]["ZIP_CODE"]])},
        ],
    }
    return body, values, stops


@pytest.fixture(scope="module")
def proxy_servers(tmp_path_factory):
    upstream_app, received = recording_upstream()
    folder = save_tiny(tmp_path_factory.mktemp("privacy") / "tiny")
    with ServerThread(upstream_app) as upstream:
        app = build_app(str(folder), upstream=upstream.url, upstream_model="big", privacy=True, name="tiny")
        with ServerThread(app) as local:
            yield local, received


def test_nothing_rule_detected_and_no_stop_reaches_the_upstream(proxy_servers):
    local, received = proxy_servers
    rng = random.Random(1)
    for _ in range(6):
        received.clear()
        body, values, stops = every_field_request(rng)
        reply = httpx.post(local.url + "/chat/completions", json=body, timeout=60).json()
        assert "choices" in reply, reply
        assert reply["choices"][0]["message"]["content"] == "echo: " + body["messages"][-1]["content"]
        sent = json.dumps(received, ensure_ascii=False)
        leaked = [x for x in values + stops if x in sent]
        assert not leaked, leaked
        got = received[0]
        assert [m["role"] for m in got["messages"]] == [m["role"] for m in body["messages"]]
        assert "stop" not in got and got["tools"][0]["function"]["parameters"]["type"] == "object"
        assert json.loads(got["messages"][3]["tool_calls"][0]["function"]["arguments"]).keys() == {"to", "card"}
    completion = httpx.post(local.url + "/completions", json={"model": "tiny", "prompt": body["messages"][-1]["content"],
                                                             "stop": stops[:1]}, timeout=60).json()
    assert completion["choices"][0]["text"] == "echo: " + body["messages"][-1]["content"]
    assert not [x for x in values + stops if x in json.dumps(received[-1])]


def test_stops_are_applied_to_the_restored_answer(tmp_path):
    email = "ann.lee@example.com"
    upstream_app, received = recording_upstream(reply="Write to <EMAIL_ADDRESS_1> now. STOP here. More text.")
    with ServerThread(upstream_app) as upstream:
        app = build_app(str(save_tiny(tmp_path / "tiny")), upstream=upstream.url, upstream_model="big", privacy=True,
                        name="tiny")
        with ServerThread(app) as local:
            client = openai.OpenAI(base_url=local.url, api_key="x", max_retries=0)
            kwargs = dict(model="tiny", messages=[{"role": "user", "content": f"mail {email}"}])
            cut = client.chat.completions.create(stop=["STOP"], **kwargs).choices[0]
            by_value = client.chat.completions.create(stop=["example.com now"], **kwargs).choices[0]
            whole = client.chat.completions.create(**kwargs).choices[0]
            streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                stream=True, stop=["STOP"], **kwargs) if c.choices)
    assert (cut.message.content, cut.finish_reason) == (f"Write to {email} now. ", "stop")
    assert by_value.message.content == "Write to ann.lee@"  # a stop inside a restored value cuts there too
    assert whole.message.content == f"Write to {email} now. STOP here. More text."
    assert streamed == cut.message.content
    assert email not in json.dumps(received) and "STOP" not in json.dumps(received)


class UnsureTagger:
    """Tags "Quill" as a person it is unsure about (0.5), and "Zed" as one it is sure about."""

    low, high = 0.3, 0.9

    def words(self, text):
        out = []
        for name, p in (("Quill", 0.5), ("Zed", 0.99)):
            start = text.find(name)
            if start >= 0:
                out.append(WordScore(start, start + len(name), "PERSON", p, True))
        return out

    def spans_of(self, text, words):
        from slmkit.collab.pii_tagger import spans_from_words

        return spans_from_words(words, self.low)

    def unsure(self, word):
        return self.low <= word.p < self.high


def test_strict_mode_refuses_what_the_tagger_is_unsure_about(tmp_path):
    from slmkit.serve.app import create_app
    from slmkit.serve.build import load_engine

    upstream_app, received = recording_upstream()
    engine = load_engine(str(save_tiny(tmp_path / "tiny")), name="tiny")
    with ServerThread(upstream_app) as upstream:
        from slmkit.collab.client import UpstreamClient

        collab = {strict: Collaboration(upstream=UpstreamClient(upstream.url, "big"), privacy=PrivacyProxy(UnsureTagger(), strict))
                  for strict in (False, True)}
        with ServerThread(create_app(engine, collab[True])) as strict, ServerThread(create_app(engine, collab[False])) as guess:
            message = {"model": "tiny", "messages": [{"role": "user", "content": "Ask Zed and Quill."}]}
            refused = httpx.post(strict.url + "/chat/completions", json=message, timeout=30)
            sure = httpx.post(strict.url + "/chat/completions", timeout=30,
                              json={**message, "messages": [{"role": "user", "content": "Ask Zed."}]})
            guessed = httpx.post(guess.url + "/chat/completions", json=message, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "privacy_uncertain"
    assert "'Quill'" in refused.json()["error"]["message"]
    assert sure.status_code == 200 and guessed.status_code == 200
    assert [r["messages"][0]["content"] for r in received] == ["Ask <PERSON_1>.", "Ask <PERSON_1> and <PERSON_2>."]
    assert guessed.json()["choices"][0]["message"]["content"] == "echo: Ask Zed and Quill."


def test_privacy_without_a_tagger_warns_and_strict_needs_one(tmp_path, capsys):
    folder = str(save_tiny(tmp_path / "tiny"))
    build_app(folder, upstream="http://127.0.0.1:9/v1", upstream_model="big", privacy=True)
    warning = capsys.readouterr().err
    assert "in clear" in warning and "PERSON" in warning and "ORGANIZATION" in warning
    with pytest.raises(SlmError, match="--privacy-strict needs --privacy-tagger"):
        build_app(folder, upstream="http://127.0.0.1:9/v1", upstream_model="big", privacy_strict=True)
    with pytest.raises(SlmError, match="--privacy-tagger file .* not found"):
        build_app(folder, upstream="http://127.0.0.1:9/v1", upstream_model="big", privacy_tagger=str(tmp_path / "no.pt"))


def test_a_name_runs_on_over_the_capitalised_words_after_it():
    proxy = PrivacyProxy(UnsureTagger())
    assert proxy.redact("Ask Zed Moreau-Smith Junior about it")[0] == "Ask <PERSON_1> about it"
    assert proxy.redact("ask zed about it")[0] == "ask zed about it"  # no tagger hit in lower case here
    assert proxy.redact("Zed. The rest")[0] == "<PERSON_1>. The rest"
    assert proxy.redact("ASK Zed Moreau")[0] == "ASK <PERSON_1>"
