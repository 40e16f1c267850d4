"""Build the wikihop development set: template multi-hop questions over ~1,000 2WikiMultiHopQA passages.

    python -m bench.make_wikihop [--corpus ../shared/corpora/wiki-passages.jsonl] [--out bench/data/wikihop]
                                 [--questions 300] [--comparisons 45] [--passages 1000]

Writes ``qa.json`` (questions and gold passage ids) and ``passages.json`` (the ids of the passages
that form the retrieval corpus, and the SHA-256 of the corpus file they come from). No passage text
is copied: the corpus README forbids it, and ``bench.retrieval_eval`` reads the text from
``../shared/corpora`` at run time.

How a bridge question is made (no model, the same output on every run):

1. A *link* is a passage A whose text names the title of another passage B ("... is a 1998 film
   directed by Jean Renoir", B's title being "Jean Renoir"), the name not running on into a longer
   one ("directed by Jean Renoir Jr.").
2. The words just before the name give the *bridge relation* (``RELATIONS``): "directed by" ->
   director, "son of" / "daughter of" -> father or mother (by B's pronouns), "married to" / "his
   wife" -> husband or wife, "composed by" -> composer, and so on. Links no pattern fits are dropped,
   and so is a maker or spouse named as one of two ("directed by X and Y").
3. B's own text gives the *attribute* asked about (``attributes``): the birth or death date in the
   parenthesis after its title, "( born 1950)" / "( 1901 – 1966)", the nationality of "is an
   American ...", "born in PLACE", "died in PLACE".
4. The question names A and asks about B through the relation, in the style of 2WikiMultiHopQA's
   compositional questions: "When was the director of the film Polish-Russian War born?". It never
   names B (checked); gold = [A, B], answer passage = B.

A comparison question names two films (or two people) whose passages give their years: "Which film
came out first, X or Y?", "Who was born first, X or Y?"; gold = both passages.

The corpus is the union of the gold passages, topped up to ``--passages`` with other passages of the
file, taken in the order of a keyed hash of their ids (deterministic, spread over the whole file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import REPO, SHARED

DEFAULT_CORPUS = SHARED / "corpora" / "wiki-passages.jsonl"
DEFAULT_OUT = REPO / "bench" / "data" / "wikihop"
SEED = "wikihop-v1"  # the key of every hash-based choice: change it to draw a different set

# The bridge relation from the words just before B's name in A, tried in order (the first match wins).
# Each pattern is anchored at the end of the text before the name. Relations with "{gender}" need B's
# gender (from its pronouns) and are dropped without it.
_HONORIFIC = r"(?:(?:King|Queen|Duke|Duchess|Emperor|Empress|Prince|Princess|Count|Countess|Sultan|Lord|Lady|Sir|Saint)\s+)?"
_ORDINAL = r"(?:(?:eldest|elder|youngest|younger|only|second|third|fourth|fifth|sixth|illegitimate|surviving|first|oldest|natural)\s+)?"
RELATIONS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern + r"\s*$"))
    for name, pattern in (
        ("director", r"(?<!co-)\bdirected by"),
        ("composer", r"\b(?:composed by|music (?:was )?(?:composed )?by|musical score by|score (?:was )?composed by)"),
        ("producer", r"(?<!co-)\bproduced by"),
        ("screenwriter", r"\b(?:screenplay|script) (?:was )?(?:written )?by"),
        ("author", r"\b(?:novel|book|story|play|poem) (?:written )?by"),
        ("performer", r"\b(?:performed by|sung by|recorded by|by (?:American |British |English |Canadian )?(?:singer|rapper|band|recording artist|singer-songwriter))"),
        ("founder", r"\bfounded by"),
        ("{parent}", r"\b" + _ORDINAL + r"(?:son|daughter|child) of " + _HONORIFIC),
        ("{parent}", r"\b" + _ORDINAL + r"(?:son|daughter|child) of (?:[A-Z][^.;()\"]{0,60}?) (?:and|by) (?:(?:his|her) (?:first |second |third )?(?:wife|husband),? )?" + _HONORIFIC),
        ("{spouse}", r"\b(?:(?:was |were )?married(?: to)?|(?:by )?marriage to|(?:the )?(?:wife|husband|consort|widow|widower) of " + _HONORIFIC + r"|(?:his|her) (?:first |second |third )?(?:wife|husband),?)"),
    )
)
# A's kind, from its first sentence, for the question's wording ("the director of the film X").
_KINDS = (("film", re.compile(r"\b(?:film|movie|documentary)\b")), ("song", re.compile(r"\bsong\b")),
          ("album", re.compile(r"\balbum\b")), ("novel", re.compile(r"\bnovel\b")))
_WORK_RELATIONS = {"director", "composer", "producer", "screenwriter", "author", "performer"}

NATIONALITIES = frozenset("""
American English French British German Italian Indian Canadian Scottish Australian Spanish Argentine Swedish
Irish Chinese Polish Brazilian Mexican Czech Austrian Dutch Russian Hungarian Belgian Danish Portuguese Welsh
Norwegian Japanese Soviet Finnish Romanian Filipino Swiss Bangladeshi Croatian Israeli Pakistani Iranian Turkish
Chilean Egyptian Venezuelan Serbian Greek Cuban Taiwanese Nigerian Indonesian Malaysian Albanian Lebanese
Jamaican Ukrainian Belarusian Singaporean Slovak Georgian Qatari Uruguayan Tunisian Togolese Estonian Ivorian
Zimbabwean Macedonian Bolivian Argentinian Armenian Jordanian Palestinian Colombian Kenyan Bosnian Peruvian
Kuwaiti Libyan Bruneian Yugoslavian Yugoslav Icelandic Latvian Lithuanian Slovenian Bulgarian Moroccan
Algerian Ghanaian Ethiopian Vietnamese Thai Korean Iraqi Syrian Afghan Nepalese Ecuadorian Paraguayan
Guatemalan Haitian Luxembourgish Maltese Cypriot Mongolian Uzbek Kazakh Azerbaijani Sri-Lankan
""".split()) | {"South Korean", "North Korean", "South African", "New Zealand", "Hong Kong", "Puerto Rican",
                "Saudi Arabian", "Saudi", "Sri Lankan", "Dominican", "Trinidadian"}
_NATIONALITY = re.compile(r"\b(?:is|was) (?:an?|the) (?:former |retired |late )?((?:[A-Z][a-z]+)(?:[ -][A-Z][a-z]+)?)\b")
_YEAR = re.compile(r"\b(\d{3,4})\b")
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
# a date as the passages write it: "5 May 1920", "May 5, 1920", "May 1920", "c. 1350", "1920"; "Madrid, 23 June 1862" -> "23 June 1862"
_DATE = re.compile(r"(?:c\. ?)?(?:\d{1,2} " + _MONTH + r",? \d{3,4}|" + _MONTH + r" \d{1,2}, \d{3,4}|" + _MONTH + r" \d{3,4}|\d{3,4})(?: (?:AD|BC|BCE|CE)\b)?")
_PLACE_WORD = r"(?:St\.|Ft\.|Mt\.|[A-Z][\w'’-]*)"
_PLACE = r"(" + _PLACE_WORD + r"(?:(?:,\s*|\s+)(?:" + _PLACE_WORD + r"|de|del|di|da|upon|am|im))*)"
_BORN_IN = re.compile(r"\b(?:He|She|[A-Z][\w-]*) was born (?:on [^,.;]{3,25},? |in \d{4},? )?in " + _PLACE)
_DIED_IN = re.compile(r"\b(?:He|She|[A-Z][\w-]*) died (?:on [^,.;]{3,25},? |in \d{4},? )?in " + _PLACE)
_HE = re.compile(r"\b(?:he|his|him|himself)\b", re.IGNORECASE)
_SHE = re.compile(r"\b(?:she|her|hers|herself)\b", re.IGNORECASE)
_FILM_YEAR = re.compile(r"\b(?:is|was) an? (\d{4}) [^.]{0,60}?\b(?:film|movie)\b")
# After B's name: the name must end there (no further capitalised word, no "Jr.").
_NAME_GOES_ON = re.compile(r"^(?:\s*[A-Z0-9]|\s+(?:Jr|Sr)\b|[-'’]\w)")
# ... and, for a work's maker or a spouse, not be the first of two ("directed by X and Y"); "son of X and Y" is fine.
_SECOND_NAME = re.compile(r"^,?\s+(?:and|&)\s+[A-Z]")

ATTRIBUTE_QUESTIONS = {
    "birth date": "When was {subject} born?",
    "death date": "When did {subject} die?",
    "nationality": "What nationality is {subject}?",
    "birth place": "Where was {subject} born?",
    "death place": "Where did {subject} die?",
}


@dataclass(frozen=True, slots=True)
class Passage:
    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Link:
    """Passage ``a`` names passage ``b``'s title at ``start`` in its text."""

    a: Passage
    b: Passage
    start: int


@dataclass(slots=True)
class Question:
    id: str
    type: str  # "bridge" or "comparison"
    question: str
    gold: list[str]
    answer: str  # the id of the passage that holds the answer
    answer_text: str
    relation: str = ""  # bridge: director, father, ...; comparison: the attribute compared
    attribute: str = ""  # bridge: the attribute of B asked about
    extra: dict = field(default_factory=dict)


def keyed_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join((SEED, *parts)).encode("utf-8")).hexdigest()


def read_passages(path: Path) -> list[Passage]:
    with path.open(encoding="utf-8") as handle:
        return [Passage(r["id"], r["title"], r["text"]) for r in map(json.loads, handle) if r.get("text")]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_links(passages: Sequence[Passage]) -> list[Link]:
    """Every place where a passage's text names another passage's title as a whole name."""
    by_first_word: dict[str, list[Passage]] = defaultdict(list)
    for p in passages:
        if p.title.strip():
            by_first_word[p.title.split()[0]].append(p)
    links = []
    for a in passages:
        for word in re.finditer(r"\S+", a.text):
            for b in by_first_word.get(word.group(), ()):
                if b.id == a.id or not a.text.startswith(b.title, word.start()):
                    continue
                if _NAME_GOES_ON.match(a.text[word.start() + len(b.title):]):
                    continue
                links.append(Link(a, b, word.start()))
    return links


def gender(text: str) -> str:
    """"m" or "f" when the passage's pronouns clearly say so, else ""."""
    he, she = len(_HE.findall(text)), len(_SHE.findall(text))
    if he >= 2 and he >= 3 * she:
        return "m"
    if she >= 2 and she >= 3 * he:
        return "f"
    return ""


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[a-z0-9)\]])\.\s+(?=[A-Z])", text, maxsplit=1)[0]


# What A must be for each relation: a work of these kinds, or a person ("" kind, with pronouns).
_RELATION_KINDS = {"director": {"film"}, "producer": {"film", "album", "song"}, "screenwriter": {"film"},
                   "composer": {"film", "song", "album"}, "performer": {"song", "album"}, "author": {"novel"}}
_SENTENCE_END = re.compile(r"(?<=[a-z0-9)\]])\.\s+(?=[A-Z])|;\s+")
# words that show the sentence is about someone or something else than A ("His wife Anna was the daughter of B")
_OTHER_SUBJECT = re.compile(r"\b(?:his|her|their|its|whose|who|married|wife|husband|widow|brother|sister|son|daughter|"
                            r"child|children|grandson|granddaughter|grandchild|nephew|niece|cousin|mother|father|heir|"
                            r"sequel|remake|followed|version|adaptation|original|also|later)\b|[(\"]", re.IGNORECASE)


def _about_a(prefix: str, a: Passage, first: bool) -> bool:
    """Whether the sentence up to the relation words speaks of A itself: "He was the eldest", "A (1901 – 1966) was the second"."""
    prefix = prefix.strip()
    if first:
        # the first sentence's subject is A, however it is written: what follows its first "was"/"is" must be plain words
        verb = re.search(r"\b(?:is|was)\b", prefix)
        return bool(verb) and not _OTHER_SUBJECT.search(prefix[verb.end():])
    names = {"He", "She", "It", a.title.split()[0], a.title.split(" (")[0].split()[-1]}
    words = prefix.split(maxsplit=1)
    return bool(words) and words[0] in names and not _OTHER_SUBJECT.search(words[1] if len(words) > 1 else "")


def bridge_relation(link: Link) -> str | None:
    """The relation from A to B named by the words before B's title, in a sentence about A (its first two for a work)."""
    sentences = _SENTENCE_END.split(link.a.text[:link.start])
    sentence = sentences[-1]
    for name, pattern in RELATIONS:
        found = pattern.search(sentence)
        if not found:
            continue
        if name != "{parent}" and _SECOND_NAME.match(link.a.text[link.start + len(link.b.title):]):
            return None
        what = kind(link.a)
        if name.startswith("{"):
            if what or not _about_a(sentence[:found.start()], link.a, len(sentences) == 1):
                return None
            who = gender(link.b.text)
            if not who:
                return None
            if name == "{parent}":
                return "father" if who == "m" else "mother"
            return "husband" if who == "m" else "wife"
        if what not in _RELATION_KINDS.get(name, {what}) or len(sentences) > 2:
            return None
        if _OTHER_SUBJECT.search(sentence[:found.start()].replace("(", " ").replace('"', " ")):
            return None
        return name
    return None


def _life_dates(passage: Passage) -> tuple[str, str]:
    """(birth, death) from the parenthesis right after the title: "( born 1950)", "( 1901 – 1966)", "( died 875)"."""
    match = re.match(re.escape(passage.title) + r"\s*\(\s*([^)]*?)\s*\)", passage.text)
    if not match:
        return "", ""
    inside = match.group(1)
    if ";" in inside:  # "( Italian: ...; 1901 – 1966)": the dates follow the last semicolon
        inside = inside.rsplit(";", 1)[1].strip()

    def date(part: str) -> str:
        found = _DATE.search(part)
        return found.group(0) if found else ""

    born = re.fullmatch(r"born\s+(.+)", inside)
    if born:
        return date(born.group(1)), ""
    died = re.fullmatch(r"died\s+(.+)", inside)
    if died:
        return "", date(died.group(1))
    parts = re.split(r"\s*[–-]\s+|\s+[–-]\s*|(?<=\d)[–-](?=\d)", inside)
    if len(parts) == 2:
        born_date, died_date = date(parts[0]), date(parts[1])
        if born_date and died_date:
            return born_date, died_date
    return "", ""


def attributes(passage: Passage) -> dict[str, str]:
    """What B's own text says about its subject: {"birth date": "5 May 1920", "nationality": "American", ...}."""
    found: dict[str, str] = {}
    born, died = _life_dates(passage)
    if born:
        found["birth date"] = born
    if died:
        found["death date"] = died
    head = first_sentence(passage.text)
    nationality = _NATIONALITY.search(head)
    if nationality and head[nationality.end():nationality.end() + 1] not in ("-", "–"):  # not "Polish-born", "Italian- Argentine"
        words = nationality.group(1)
        if words in NATIONALITIES:
            found["nationality"] = words
        elif words.split(" ")[0] in NATIONALITIES and "-" not in words:
            found["nationality"] = words.split(" ")[0]
    for key, pattern in (("birth place", _BORN_IN), ("death place", _DIED_IN)):
        match = pattern.search(passage.text)
        if match:
            place = match.group(1).rstrip(",.")
            subject_word = match.group(0).split(" ", 1)[0]
            if subject_word in ("He", "She") or passage.title.startswith(subject_word) or passage.title.endswith(subject_word):
                found[key] = place
    return found


def kind(passage: Passage) -> str:
    """What the passage is about, by the first of the kind words in its first sentence ("a film based on the novel": film)."""
    head = first_sentence(passage.text)
    found = [(match.start(), name) for name, pattern in _KINDS if (match := pattern.search(head))]
    return min(found)[1] if found else ""


def plain_title(passage: Passage) -> str:
    """The title without a "(film)" / "(1936 film)" disambiguator, which would give a comparison's answer away."""
    return re.sub(r" \((?:\d{4} )?(?:film|song|album|novel)\)$", "", passage.title)


def subject_phrase(relation: str, a: Passage) -> str:
    """'the director of the film Polish-Russian War', 'the director of the 2000 film Get Carter', 'the father of Lothair II'."""
    title, what = a.title, kind(a) if relation in _WORK_RELATIONS else ""
    disambiguator = re.fullmatch(r"(.+?) \((?:(\d{4}) )?(film|song|album|novel)\)", title)
    if disambiguator and (not what or what == disambiguator.group(3)):
        title, what = disambiguator.group(1), " ".join(filter(None, (disambiguator.group(2), disambiguator.group(3))))
    return f"the {relation} of {'the ' + what + ' ' if what else ''}{title}"


def _allowed_attributes(relation: str, b: Passage) -> list[str]:
    found = attributes(b)
    return [key for key in ATTRIBUTE_QUESTIONS if key in found]


def bridge_questions(passages: Sequence[Passage], *, per_bridge: int = 2) -> list[Question]:
    """Every bridge question the templates allow, one per (A, B) link, at most ``per_bridge`` through one B."""
    candidates: list[Question] = []
    seen_pairs: set[tuple[str, str]] = set()
    for link in find_links(passages):
        a, b = link.a, link.b
        if (a.id, b.id) in seen_pairs:
            continue
        relation = bridge_relation(link)
        if relation is None:
            continue
        found = attributes(b)
        keys = _allowed_attributes(relation, b)
        if not keys:
            continue
        seen_pairs.add((a.id, b.id))
        # the attribute asked: a keyed hash spreads the five kinds over the pairs
        key = min(keys, key=lambda k: keyed_hash("attribute", a.id, b.id, k))
        question = ATTRIBUTE_QUESTIONS[key].format(subject=subject_phrase(relation, a))
        if b.title.lower() in question.lower() or a.title == b.title:
            continue
        candidates.append(Question(id="", type="bridge", question=question, gold=[a.id, b.id], answer=b.id,
                                   answer_text=found[key], relation=relation, attribute=key,
                                   extra={"bridge_title": b.title}))
    by_bridge: dict[str, list[Question]] = defaultdict(list)
    for q in sorted(candidates, key=lambda q: keyed_hash("bridge", *q.gold)):
        by_bridge[q.answer].append(q)
    return [q for group in by_bridge.values() for q in group[:per_bridge]]


def film_year(passage: Passage) -> str:
    match = _FILM_YEAR.search(first_sentence(passage.text))
    return match.group(1) if match else ""


def comparison_questions(passages: Sequence[Passage], count: int, exclude: set[str]) -> list[Question]:
    """'Which film came out first, X or Y?' and 'Who was born first, X or Y?' over passages not in ``exclude``."""
    films = [(p, film_year(p)) for p in passages if p.id not in exclude]
    films = [(p, int(y)) for p, y in films if y]
    people = []
    for p in passages:
        if p.id in exclude:
            continue
        born = attributes(p).get("birth date", "")
        years = _YEAR.findall(born)
        if len(years) == 1 and gender(p.text):
            people.append((p, int(years[0])))
    made: list[Question] = []
    for kind_name, pool, template in (("film release year", films, "Which film came out first, {x} or {y}?"),
                                      ("birth year", people, "Who was born first, {x} or {y}?")):
        pool = sorted(pool, key=lambda item: keyed_hash("comparison", kind_name, item[0].id))
        used: set[str] = set()
        wanted = count // 2 if kind_name == "film release year" else count - len(made)
        for i, (x, x_year) in enumerate(pool):
            if len([q for q in made if q.relation == kind_name]) >= wanted:
                break
            if x.id in used:
                continue
            for y, y_year in pool[i + 1:]:
                if y.id in used or y_year == x_year or x.title in y.title or y.title in x.title:
                    continue
                first = x if x_year < y_year else y
                made.append(Question(id="", type="comparison", question=template.format(x=plain_title(x), y=plain_title(y)),
                                     gold=[x.id, y.id], answer=first.id, answer_text=plain_title(first),
                                     relation=kind_name, extra={"years": [x_year, y_year]}))
                used |= {x.id, y.id}
                break
    return made


def select_bridge(candidates: Sequence[Question], count: int, max_share: float = 0.5) -> list[Question]:
    """``count`` questions in keyed-hash order, no relation above ``max_share`` of them where others can fill."""
    ordered = sorted(candidates, key=lambda q: keyed_hash("select", *q.gold))
    cap = max(1, int(count * max_share))
    chosen: list[Question] = []
    per_relation: Counter[str] = Counter()
    used_gold: set[str] = set()
    for strict in (True, False):
        for q in ordered:
            if len(chosen) >= count:
                break
            if q in chosen or (strict and (per_relation[q.relation] >= cap or q.gold[0] in used_gold)):
                continue
            chosen.append(q)
            per_relation[q.relation] += 1
            used_gold.add(q.gold[0])
    return chosen


def choose_corpus(passages: Sequence[Passage], gold: Iterable[str], size: int) -> list[str]:
    """The gold passages plus distractors in keyed-hash order up to ``size`` ids, sorted."""
    chosen = set(gold)
    for p in sorted(passages, key=lambda p: keyed_hash("corpus", p.id)):
        if len(chosen) >= size:
            break
        chosen.add(p.id)
    return sorted(chosen)


def choose_similar_corpus(passages: Sequence[Passage], questions: Sequence[Question], size: int, depth: int = 20) -> list[str]:
    """The gold passages plus *similar* distractors up to ``size`` ids, sorted: each question's best BM25
    passages of the whole file (title and text) that are not gold, taken rank by rank over the questions
    (every question's first, then every second, ...), as 2WikiMultiHopQA picks its distractors by
    similarity to the question."""
    import bm25s

    gold = {pid for q in questions for pid in q.gold}
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([f"{p.title}. {p.text}" for p in passages], stopwords="en", show_progress=False),
                    show_progress=False)
    found, _ = retriever.retrieve(bm25s.tokenize([q.question for q in questions], stopwords="en", show_progress=False),
                                  k=min(depth, len(passages)), show_progress=False, n_threads=1)
    ranked = [[passages[int(i)].id for i in row if passages[int(i)].id not in gold] for row in found]
    chosen = set(gold)
    for rank in range(min(depth, len(passages))):
        for row in ranked:
            if len(chosen) >= size:
                return sorted(chosen)
            if rank < len(row):
                chosen.add(row[rank])
    return sorted(chosen)


BRIDGE_COMPARISONS = {  # the attribute of the two directors compared -> the question
    "birth date": "Which film has the director who was born earlier, {x} or {y}?",
    "death date": "Which film has the director who died first, {x} or {y}?",
}


def bridge_comparison_questions(bridge: Sequence[Question], passages: Sequence[Passage], count: int) -> list[Question]:
    """"Which film has the director who was born earlier, X or Y?" over pairs of the director bridges already
    made (so the corpus does not change); gold = both films and both directors, answer = the earlier one's film."""
    by_id = {p.id: p for p in passages}
    pool = sorted((q for q in bridge if q.relation == "director"), key=lambda q: keyed_hash("bridge-comparison", *q.gold))
    made: list[Question] = []
    used: set[str] = set()
    for i, first in enumerate(pool):
        if len(made) >= count:
            break
        if first.id in used:
            continue
        kind_name = min(BRIDGE_COMPARISONS, key=lambda k: keyed_hash("bridge-comparison kind", first.gold[0], k))
        for second in pool[i + 1:]:
            if second.id in used or second.answer == first.answer:
                continue
            years = [_YEAR.findall(attributes(by_id[q.answer]).get(kind_name, "")) for q in (first, second)]
            if any(len(y) != 1 for y in years) or years[0] == years[1]:
                continue
            x, y = by_id[first.gold[0]], by_id[second.gold[0]]
            earlier = x if int(years[0][0]) < int(years[1][0]) else y
            made.append(Question(id="", type="bridge-comparison",
                                 question=BRIDGE_COMPARISONS[kind_name].format(x=plain_title(x), y=plain_title(y)),
                                 gold=[*first.gold, *second.gold], answer=earlier.id, answer_text=plain_title(earlier),
                                 relation="director", attribute=kind_name,
                                 extra={"years": [int(years[0][0]), int(years[1][0])]}))
            used |= {first.id, second.id}
            break
    return made


def build(passages: Sequence[Passage], *, questions: int = 300, comparisons: int = 45, bridge_comparisons: int = 40,
          size: int = 1000, similar_distractors: bool = False) -> tuple[list[Question], list[str]]:
    """``questions`` bridge and comparison questions, then ``bridge_comparisons`` over their director bridges
    (numbered after them, over the same passages: the corpus is that of the first ``questions``)."""
    bridge = select_bridge(bridge_questions(passages), questions - comparisons)
    used = {pid for q in bridge for pid in q.gold}
    made = bridge + comparison_questions(passages, comparisons, used)
    for i, q in enumerate(made, 1):
        q.id = f"wh{i:03d}"
    extra = bridge_comparison_questions(bridge, passages, bridge_comparisons)
    for i, q in enumerate(extra, len(made) + 1):
        q.id = f"wh{i:03d}"
    if similar_distractors:
        corpus = choose_similar_corpus(passages, made + extra, size)
    else:
        corpus = choose_corpus(passages, (pid for q in made for pid in q.gold), size)
    return made + extra, corpus


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--questions", type=int, default=300, help="questions in all (bridge + comparison)")
    parser.add_argument("--comparisons", type=int, default=45)
    parser.add_argument("--bridge-comparisons", type=int, default=40, help="added after --questions, over their passages")
    parser.add_argument("--similar-distractors", action="store_true",
                        help="distractors most like the questions (BM25), not drawn at random (bench/data/wikihop-similar)")
    parser.add_argument("--passages", type=int, default=1000, help="passages in the retrieval corpus")
    opts = parser.parse_args(argv)
    if not opts.corpus.exists():
        raise SystemExit(f"{opts.corpus}: not found (the shared 2WikiMultiHopQA passages; see ../shared/corpora/README.md)")
    passages = read_passages(opts.corpus)
    made, corpus = build(passages, questions=opts.questions, comparisons=opts.comparisons,
                         bridge_comparisons=opts.bridge_comparisons, size=opts.passages,
                         similar_distractors=opts.similar_distractors)
    opts.out.mkdir(parents=True, exist_ok=True)
    source = {"file": "wiki-passages.jsonl", "sha256": file_sha256(opts.corpus), "seed": SEED}
    counts = Counter(q.type for q in made)
    description = (f"template questions over 2WikiMultiHopQA passages ({counts['bridge']} bridge: A's text names B, the"
                   f" question names A and asks about B, gold A and B; {counts['comparison']} comparison: two named"
                   f" passages; {counts['bridge-comparison']} bridge-comparison: two named films and their directors,"
                   " four gold passages; made by `bench.make_wikihop`, for tuning only)")
    rows = [json.dumps({k: v for k, v in asdict(q).items() if v or k == "gold"}, ensure_ascii=False) for q in made]
    if opts.similar_distractors:
        description = description[:-1] + "; distractors: the passages most like the questions by BM25)"
    name = "wikihop dev set, similar distractors" if opts.similar_distractors else "wikihop dev set"
    header = json.dumps({"name": name, "description": description, "source": source}, ensure_ascii=False)
    # one question a line: diffs stay readable when the templates change
    (opts.out / "qa.json").write_text(header[:-1] + ', "questions": [\n' + ",\n".join(rows) + "\n]}\n", encoding="utf-8")
    (opts.out / "passages.json").write_text(json.dumps({"source": source, "ids": corpus}) + "\n", encoding="utf-8")
    counts = Counter(q.relation if q.type == "bridge" else q.type for q in made)
    print(f"{len(made)} questions ({', '.join(f'{n} {r}' for r, n in counts.most_common())}), "
          f"{len(corpus)} passages -> {opts.out}")


if __name__ == "__main__":
    main()
