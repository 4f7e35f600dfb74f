"""c-TF-IDF keywords match BERTopic's formula and name the topics; LLM names."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from embedstack.analysis import Clusterer, class_tfidf, describe_clusters
from embedstack.analysis.topics import TOKEN_PATTERN, llm_namer
from embedstack.errors import InvalidInputError
from tests.analysis.corpus import LABELS, TEXTS


def test_keywords_follow_bertopics_c_tf_idf():
    """Recomputed the way BERTopic's ClassTfidfTransformer does by default: one joined
    document per class, L1-normalised counts times log(1 + avg words per class / f(w))."""
    labels = np.array([sorted(set(LABELS)).index(label) for label in LABELS])
    found = class_tfidf(TEXTS, labels, n_words=5)
    joined = [" ".join(t for t, c in zip(TEXTS, labels, strict=True) if c == k) for k in range(4)]
    vectorizer = CountVectorizer(stop_words="english", token_pattern=TOKEN_PATTERN)
    counts = vectorizer.fit_transform(joined).toarray().astype(float)
    idf = np.log(1 + counts.sum(axis=1).mean() / counts.sum(axis=0))
    weights = normalize(counts, norm="l1") * idf
    words = vectorizer.get_feature_names_out()
    for cluster in range(4):
        expected = sorted(zip(weights[cluster], words, strict=True), key=lambda p: -p[0])[:5]
        assert [round(s, 9) for _, s in found[cluster]] == [round(s, 9) for s, _ in expected]
        assert {w for w, _ in found[cluster]} <= set(words)


def test_topics_name_the_clusters_and_show_central_members(corpus_vectors):
    clusterer = Clusterer(n_clusters=4).fit(corpus_vectors)
    topics = describe_clusters(TEXTS, clusterer.labels_, corpus_vectors, n_words=8)
    assert [t.cluster for t in topics] == [0, 1, 2, 3]
    assert sum(t.size for t in topics) == len(TEXTS)
    expected_words = {
        "space": {"rocket", "astronauts", "nasa", "orbit", "launch", "telescope", "mission"},
        "football": {"match", "goal", "team", "stadium", "striker", "league", "club", "final"},
        "cooking": {"sauce", "oven", "dough", "bake", "butter", "flour", "salt", "soup"},
    }
    named = 0
    for topic in topics:
        members = [LABELS[i] for i in np.flatnonzero(clusterer.labels_ == topic.cluster)]
        majority = max(set(members), key=members.count)
        words = {w for w, _ in topic.keywords}
        named += bool(words & expected_words.get(majority, set()))
        # examples are members, the most central first
        assert all(clusterer.labels_[i] == topic.cluster for i in topic.examples)
        assert len(topic.examples) == 3
    assert named >= 3


def test_outliers_get_no_topic_and_texts_without_words_get_no_keywords():
    topics = describe_clusters(["1234 5678", "99 100", "a b"], [0, 0, -1])
    assert len(topics) == 1 and topics[0].keywords == [] and topics[0].label == "cluster 0"
    with pytest.raises(InvalidInputError, match="2 texts but 3 labels"):
        class_tfidf(["a", "b"], [0, 1, 2])


class ScriptedChat:
    """A real ChatModel stand-in for naming: records the prompt, replies like a small LLM."""

    def __init__(self, reply: str):
        self.reply, self.prompts = reply, []

    def chat(self, messages, max_tokens):
        self.prompts.append(messages[-1]["content"])
        return self.reply


def test_llm_names_are_cleaned_and_the_prompt_shows_keywords_and_examples(corpus_vectors):
    chat = ScriptedChat('\n  Name: "Space Exploration".\nSome explanation')
    clusterer = Clusterer(n_clusters=4).fit(corpus_vectors)
    topics = describe_clusters(TEXTS, clusterer.labels_, corpus_vectors, namer=llm_namer(chat))
    assert {t.name for t in topics} == {"Space Exploration"}
    assert all(t.label == "Space Exploration" for t in topics)
    assert "Keywords:" in chat.prompts[0] and TEXTS[topics[0].examples[0]][:40] in chat.prompts[0]
