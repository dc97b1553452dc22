import json

import pytest

from slmkit.data.filters import FilterOptions, filter_documents, filter_file, gopher_rule, normalize

GOOD = ("The river town grew slowly during the nineteenth century, as farmers brought grain to the new mill and "
        "merchants opened shops along the main road. A small school was built near the church in 1852, and the first "
        "newspaper appeared a decade later. Floods damaged several bridges in the spring of 1881, yet the residents "
        "rebuilt them within two years using stone from a nearby quarry. Today the old mill houses a museum that "
        "describes local history, crafts and the daily work of families who lived beside the water.")
OTHER = ("Honey bees communicate the location of flowers through a waggle dance performed inside the hive. The angle "
         "of the dance relative to vertical shows the direction of the food source compared with the sun, while its "
         "duration signals distance. Researchers decoded this behaviour in the twentieth century by marking foragers "
         "and watching them return to feeders placed at measured positions around the colony, which earned a Nobel "
         "prize for the scientist who led the experiments.")
UNIQUE = [f"token{i}word" for i in range(60)]

BAD = {
    "gopher_word_count": "Too short to be a useful document.",
    "gopher_mean_word_length": " ".join("a b c d e f g h i j".split() * 8),
    "gopher_symbol_ratio": GOOD + " " + " ".join(f"#tag{i}" for i in range(20)),
    "gopher_alpha_words": GOOD + " " + " ".join(str(1000 + i) for i in range(60)),
    "gopher_bullet_lines": "\n".join(f"- buy fresh produce number{i} at the market today please" for i in range(12)),
    "gopher_ellipsis_lines": "\n".join(f"and then the story went on about the quiet harbour town number{i} ..." for i in range(10)),
    "gopher_duplicate_lines": "\n".join([GOOD[:120], OTHER[:120], GOOD[120:240]] * 2),
    "gopher_top_ngram": " ".join(w for u in UNIQUE[:40] for w in (u, "the", "cat")),
    "gopher_duplicate_ngrams": " ".join(UNIQUE[:30] + "one two three four five six seven eight nine ten".split() * 3 + UNIQUE[30:]),
}


@pytest.mark.parametrize("rule", list(BAD))
def test_each_heuristic_removes_its_bad_example_and_keeps_good_text(rule):
    cfg = FilterOptions()
    assert gopher_rule(GOOD, cfg) is None and gopher_rule(OTHER, cfg) is None
    assert gopher_rule(BAD[rule], cfg) == rule
    keep, report = filter_documents([GOOD, BAD[rule], OTHER], cfg)
    assert keep == [True, False, True]
    assert report.removed == {rule: 1} and report.kept == 2


def test_exact_dedup_ignores_case_punctuation_and_spacing():
    variant = "  " + GOOD.upper().replace(",", " ;") + "!!"
    assert normalize(variant) == normalize(GOOD)
    keep, report = filter_documents([GOOD, OTHER, variant], FilterOptions(near_dedup=False))
    assert keep == [True, True, False] and report.removed == {"exact_duplicate": 1}


def test_near_duplicates_removed_by_minhash_lsh_distinct_texts_kept():
    near = GOOD.replace("museum", "gallery")
    keep, report = filter_documents([GOOD, OTHER, near], FilterOptions())
    assert keep == [True, True, False] and report.removed == {"near_duplicate": 1}
    keep, _ = filter_documents([GOOD, OTHER, near], FilterOptions(near_dedup=False))
    assert keep == [True, True, True]


def test_perplexity_rule_uses_the_reference_scores():
    cfg = FilterOptions(ppl_model="any", max_perplexity=100.0)
    keep, report = filter_documents([GOOD, OTHER], cfg, perplexities=lambda docs: [20.0 if d is GOOD else 500.0 for d in docs])
    assert keep == [True, False] and report.removed == {"perplexity": 1}


@pytest.mark.integration
def test_perplexity_filter_with_a_real_reference_model():
    import random

    rng = random.Random(0)
    word_salad = " ".join(rng.choice(GOOD.split() + OTHER.split()) for _ in range(80))  # keyword-stuffing spam
    cfg = FilterOptions(heuristics=False, ppl_model="smollm2-135m", max_perplexity=300.0, ppl_tokens=128)
    keep, report = filter_documents([GOOD, word_salad, OTHER], cfg, show_progress=False)
    assert keep == [True, False, True] and report.removed == {"perplexity": 1}


def test_filter_file_keeps_records_and_writes_report(tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"id": 1, "text": GOOD}, {"id": 2, "text": BAD["gopher_word_count"]}, {"id": 3, "text": GOOD}, {"id": 4, "text": OTHER}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = filter_file(src, tmp_path / "out.jsonl", FilterOptions(), show_progress=False)
    kept = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in kept] == [1, 4]
    saved = json.loads((tmp_path / "out.jsonl.report.json").read_text())
    assert saved["removed"] == {"gopher_word_count": 1, "exact_duplicate": 1} == report.removed and saved["total"] == 4
