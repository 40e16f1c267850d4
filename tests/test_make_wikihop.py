"""The wikihop question generator on a handful of synthetic passages: links, relations, attributes, questions, corpus."""

from __future__ import annotations

import json

from bench.make_wikihop import (
    Passage,
    attributes,
    bridge_questions,
    build,
    comparison_questions,
    find_links,
    main,
    subject_phrase,
)

FILM = Passage("w1", "Harbour Lights (1931 film)", "Harbour Lights is a 1931 British drama film directed by Alma Reyes and starring Tom Hale.")
DIRECTOR = Passage("w2", "Alma Reyes", "Alma Reyes( 3 May 1890 – 9 June 1961) was a British film director. She was born in Leeds. "
                   "Her films include several dramas, and she later wrote her memoirs.")
PRINCE = Passage("w3", "Otto of Vell", "Otto of Vell( died 1102) was a count. He was the eldest son of Conrad of Vell and Ida. "
                 "He ruled for twenty years and his son succeeded him.")
FATHER = Passage("w4", "Conrad of Vell", "Conrad of Vell( born c. 1040) is a Belgian nobleman. He fought at sea and his lands grew.")
CODIRECTED = Passage("w5", "Grey Harbour", "Grey Harbour is a 1950 film directed by Alma Reyes and Tom Hale.")
LONGER_NAME = Passage("w6", "Night Boat", "Night Boat is a 1948 film directed by Alma Reyes Jr. about a ferry.")
NO_PRONOUNS = Passage("w7", "Ida", "Ida was a noble.")
OTHER_FILM = Passage("w8", "Quiet Street", "Quiet Street is a 1955 American comedy film set in Ohio.")
PASSAGES = [FILM, DIRECTOR, PRINCE, FATHER, CODIRECTED, LONGER_NAME, NO_PRONOUNS, OTHER_FILM]


def test_links_need_the_whole_name_and_a_maker_named_alone():
    pairs = {(link.a.id, link.b.id) for link in find_links(PASSAGES)}
    assert {("w1", "w2"), ("w3", "w4"), ("w5", "w2")} <= pairs
    assert ("w6", "w2") not in pairs  # "Alma Reyes Jr." is someone else
    relations = {tuple(q.gold): q.relation for q in bridge_questions(PASSAGES)}
    assert ("w5", "w2") not in relations  # "directed by Alma Reyes and Tom Hale": one of two directors


def test_attributes_read_the_dates_nationality_and_places():
    assert attributes(DIRECTOR) == {"birth date": "3 May 1890", "death date": "9 June 1961", "nationality": "British",
                                    "birth place": "Leeds"}
    assert attributes(FATHER) == {"birth date": "c. 1040", "nationality": "Belgian"}
    assert attributes(Passage("x", "Ana Lee", "Ana Lee( born 1950) is a Polish-born American writer.")) == {"birth date": "1950"}


def test_bridge_questions_name_a_never_b_and_pick_the_relation_from_the_words_before_b():
    questions = {tuple(q.gold): q for q in bridge_questions(PASSAGES)}
    film = questions[("w1", "w2")]
    assert film.relation == "director" and film.answer == "w2"
    assert film.question.startswith(("When was the director of the 1931 film Harbour Lights",
                                     "When did the director of the 1931 film Harbour Lights",
                                     "What nationality is the director of the 1931 film Harbour Lights",
                                     "Where was the director of the 1931 film Harbour Lights"))
    assert "Alma Reyes" not in film.question
    father = questions[("w3", "w4")]
    assert father.relation == "father"  # "eldest son of", and Conrad's pronouns are "he"
    assert "Conrad" not in father.question and "Otto of Vell" in father.question
    assert not any(q.answer == "w7" for q in questions.values())  # "... and Ida": no pronouns, no parent


def test_subject_phrase_and_comparisons():
    assert subject_phrase("director", FILM) == "the director of the 1931 film Harbour Lights"
    assert subject_phrase("father", PRINCE) == "the father of Otto of Vell"
    (films,) = [q for q in comparison_questions(PASSAGES, 2, exclude=set()) if q.relation == "film release year"]
    assert sorted(films.gold) in (["w1", "w8"], ["w5", "w8"], ["w1", "w5"], ["w6", "w8"], ["w1", "w6"], ["w5", "w6"])
    assert "(1931 film)" not in films.question


def test_build_is_deterministic_and_the_corpus_holds_every_gold_passage(tmp_path):
    first = build(PASSAGES, questions=3, comparisons=1, size=7)
    second = build(list(reversed(PASSAGES)), questions=3, comparisons=1, size=7)
    assert [q.question for q in first[0]] == [q.question for q in second[0]] and first[1] == second[1]
    questions, corpus = first
    assert len(corpus) == 7 and {pid for q in questions for pid in q.gold} <= set(corpus)
    source = tmp_path / "passages.jsonl"
    source.write_text("".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n" for p in PASSAGES))
    main(["--corpus", str(source), "--out", str(tmp_path / "out"), "--questions", "3", "--comparisons", "1", "--passages", "7"])
    qa = json.loads((tmp_path / "out" / "qa.json").read_text())
    assert [q["id"] for q in qa["questions"]] == [f"wh{i:03d}" for i in range(1, len(qa["questions"]) + 1)]
    assert all("text" not in q for q in qa["questions"])  # ids and questions only, never passage text
    assert json.loads((tmp_path / "out" / "passages.json").read_text())["ids"] == corpus


def test_the_eval_reads_the_listed_passages_from_the_shared_corpus_and_skips_without_it(tmp_path, monkeypatch):
    import pytest

    import bench.retrieval_eval as retrieval_eval

    shared = tmp_path / "corpora"
    shared.mkdir()
    (shared / "wiki-passages.jsonl").write_text(
        "".join(json.dumps({"id": p.id, "title": p.title, "text": p.text}) + "\n" for p in PASSAGES))
    data = tmp_path / "set"
    data.mkdir()
    (data / "passages.json").write_text(json.dumps({"source": {"file": "wiki-passages.jsonl"}, "ids": ["w2", "w1"]}))
    monkeypatch.setattr(retrieval_eval, "SHARED_CORPORA", shared)
    assert [(r["id"], r["title"]) for r in retrieval_eval.load_corpus(data)] == [("w1", FILM.title), ("w2", DIRECTOR.title)]
    monkeypatch.setattr(retrieval_eval, "SHARED_CORPORA", tmp_path / "absent")
    with pytest.raises(retrieval_eval.CorpusUnavailable, match="absent"):
        retrieval_eval.load_corpus(data)


def test_bridge_comparisons_pair_two_director_bridges_over_their_four_passages():
    from bench.make_wikihop import bridge_comparison_questions

    film2 = Passage("w9", "Cold Pier", "Cold Pier is a 1960 French film directed by Henri Dax.")
    director2 = Passage("w10", "Henri Dax", "Henri Dax( 2 June 1901 – 4 July 1970) was a French film director. He made films.")
    passages = [*PASSAGES, film2, director2]
    bridges = [q for q in bridge_questions(passages) if q.relation == "director"]
    (made,) = bridge_comparison_questions(bridges, passages, 5)
    assert sorted(made.gold) == ["w1", "w10", "w2", "w9"] and made.type == "bridge-comparison"
    assert "Alma Reyes" not in made.question and "Henri Dax" not in made.question
    assert made.answer == "w1"  # Alma Reyes: born 1890, died 1961


def test_similar_distractors_are_the_passages_most_like_the_questions():
    from bench.make_wikihop import Question, choose_similar_corpus

    question = Question(id="q", type="bridge", question="When was the director of the film Harbour Lights born?",
                        gold=["w1", "w2"], answer="w2", answer_text="3 May 1890")
    lookalike = Passage("w11", "Harbour Lights (1950 film)", "Harbour Lights is a 1950 film about a harbour and its lights.")
    corpus = choose_similar_corpus([*PASSAGES, lookalike], [question], size=3)
    assert corpus == ["w1", "w11", "w2"]
