"""The plain-language pairs: deterministic, and a held-out split of combinations training never saw."""

from serve_apps.plain_language.dataset import VOCABULARIES, Pair, generate, split


def terms_of(pairs: list[Pair]) -> set[str]:
    return {combination.partition("|")[2] for pair in pairs for combination in pair.combinations}


def test_the_same_seed_gives_the_same_pairs() -> None:
    assert generate() == generate()


def test_another_seed_gives_other_pairs() -> None:
    assert generate(count=50, seed=1) != generate(count=50, seed=2)


def test_the_vocabularies_hold_at_least_60_terms() -> None:
    assert sum(len(terms) for terms in VOCABULARIES.values()) >= 60


def test_a_few_thousand_pairs_without_duplicate_notes() -> None:
    pairs = generate()
    assert len(pairs) >= 3000
    assert len({pair.source for pair in pairs}) == len(pairs)


def test_about_a_tenth_is_held_out() -> None:
    pairs = generate()
    training, held_out = split(pairs)
    assert len(training) + len(held_out) == len(pairs)
    assert 0.07 <= len(held_out) / len(pairs) <= 0.15


def test_no_held_out_note_is_in_training() -> None:
    training, held_out = split(generate())
    assert not {pair.source for pair in training} & {pair.source for pair in held_out}


def test_some_held_out_pairs_put_a_term_in_a_template_training_never_did() -> None:
    pairs = generate()
    training, held_out = split(pairs)
    seen = {combination for pair in training for combination in pair.combinations}
    unseen = [pair for pair in held_out if set(pair.combinations) - seen]
    assert len(unseen) >= 0.02 * len(pairs)
    assert len({pair.template for pair in unseen}) >= 5


def test_every_held_out_term_is_seen_in_training() -> None:
    training, held_out = split(generate())
    assert terms_of(held_out) <= terms_of(training)


def test_every_template_is_in_training() -> None:
    pairs = generate()
    training, _ = split(pairs)
    assert {pair.template for pair in training} == {pair.template for pair in pairs}


def test_a_rewrite_is_one_plain_sentence() -> None:
    for pair in generate(count=500):
        assert pair.target[0].isupper(), pair
        assert pair.target.endswith("."), pair
        assert "  " not in pair.target, pair
