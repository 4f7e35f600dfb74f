"""EmbeddingClassifier on real Banking77 intents with the real default model: the three heads,
scikit-learn's contract (clone, Pipeline, cross-validation), save/load and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from embedstack.analysis import EmbeddingClassifier
from embedstack.errors import InvalidInputError
from embedstack.evaluation import load_classification
from tests.conftest import needs_shared_data
from tests.evaluation.test_classification_eval import banking_slice

pytestmark = needs_shared_data


@pytest.fixture(scope="module")
def banking(tmp_path_factory):
    """Eight intents: 16 training and 10 test texts each."""
    folder = banking_slice(tmp_path_factory.mktemp("b77"), labels=8, train=16, test=10)
    data = load_classification(folder)
    return data.train.texts, data.train.labels, data.test.texts, data.test.labels


@pytest.fixture(scope="module")
def fitted(banking):
    texts, labels, _, _ = banking
    return {
        head: EmbeddingClassifier(head=head, n_neighbors=3).fit(texts, labels)
        for head in ("logistic", "logistic-cv", "knn")
    }


@pytest.mark.parametrize("head", ["logistic", "logistic-cv", "knn"])
def test_heads_learn_the_intents(banking, fitted, head):
    _, labels, test_texts, test_labels = banking
    clf = fitted[head]
    assert clf.classes_.tolist() == sorted(set(labels))
    predicted = clf.predict(test_texts)
    assert set(predicted) <= set(labels)
    # 16 examples per intent; chance is 1/8.
    assert clf.score(test_texts, test_labels) > 0.8
    proba = clf.predict_proba(test_texts)
    assert proba.shape == (len(test_texts), 8)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (clf.classes_[proba.argmax(axis=1)] == predicted).all()


def test_logistic_cv_picks_c_from_its_grid(fitted):
    from embedstack.analysis.classifier import CV_GRID

    assert fitted["logistic-cv"].C_ in CV_GRID
    assert not hasattr(fitted["logistic"], "C_")


@pytest.mark.parametrize("head", ["logistic", "logistic-cv", "knn"])
def test_save_load_gives_identical_predictions(tmp_path, banking, fitted, head):
    _, _, test_texts, _ = banking
    clf = fitted[head]
    clf.save(tmp_path / "clf")
    assert sorted(p.name for p in (tmp_path / "clf").iterdir()) == ["classifier.json", "head.npz"]
    with np.load(tmp_path / "clf" / "head.npz", allow_pickle=False) as arrays:
        assert all(arrays[key].dtype != object for key in arrays.files)
    loaded = EmbeddingClassifier.load(tmp_path / "clf")
    assert loaded.get_params() == clf.get_params()
    assert (loaded.classes_ == clf.classes_).all()
    assert (loaded.predict(test_texts) == clf.predict(test_texts)).all()
    np.testing.assert_array_equal(loaded.predict_proba(test_texts), clf.predict_proba(test_texts))


def test_integer_labels_survive_save_and_load(tmp_path, banking):
    texts, labels, test_texts, _ = banking
    ids = {name: n * 10 for n, name in enumerate(sorted(set(labels)))}
    clf = EmbeddingClassifier().fit(texts, [ids[x] for x in labels])
    loaded = EmbeddingClassifier.load(clf.save(tmp_path / "clf"))
    assert loaded.classes_.tolist() == sorted(ids.values())
    assert loaded.predict(test_texts).tolist() == clf.predict(test_texts).tolist()


def test_report_matches_sklearn(banking, fitted):
    _, _, test_texts, test_labels = banking
    clf = fitted["logistic"]
    report = clf.report(test_texts, test_labels)
    predicted = clf.predict(test_texts)
    assert report["accuracy"] == pytest.approx(accuracy_score(test_labels, predicted))
    assert report["macro_f1"] == pytest.approx(f1_score(test_labels, predicted, average="macro"))
    expected = classification_report(test_labels, predicted, output_dict=True)
    assert report["macro avg"] == pytest.approx(expected["macro avg"])
    assert report["classes"][test_labels[0]]["support"] == 10
    json.dumps(report)  # plain Python values only


def test_clone_and_pipeline(banking):
    texts, labels, test_texts, test_labels = banking
    original = EmbeddingClassifier(head="knn", n_neighbors=3, C=2.0)
    copy = clone(original)
    assert copy.get_params() == original.get_params()
    assert not hasattr(copy, "classes_")
    pipeline = Pipeline(
        [
            ("lower", FunctionTransformer(lambda xs: [x.lower() for x in xs])),
            ("clf", EmbeddingClassifier(head="logistic")),
        ]
    )
    pipeline.fit(texts, labels)
    assert pipeline.score(test_texts, test_labels) > 0.8
    pipeline.set_params(clf__head="knn", clf__n_neighbors=3)
    assert pipeline.fit(texts, labels).named_steps["clf"].head_.n_neighbors == 3
    scores = cross_val_score(EmbeddingClassifier(), np.array(texts), labels, cv=2)
    assert len(scores) == 2 and scores.min() > 0.6


def test_vectors_you_already_have(model, banking, fitted):
    texts, labels, test_texts, _ = banking
    clf = EmbeddingClassifier().fit_vectors(model.encode(texts), labels)
    predicted = clf.predict_vectors(model.encode(test_texts))
    assert (predicted == fitted["logistic"].predict(test_texts)).all()
    with pytest.raises(InvalidInputError, match="384"):
        clf.predict_vectors(np.ones((2, 10), dtype=np.float32))
    with pytest.raises(InvalidInputError, match="NaN"):
        clf.predict_vectors(np.full((1, 384), np.nan, dtype=np.float32))


def test_bad_input_is_one_line(tmp_path, banking):
    texts, labels, _, _ = banking
    clf = EmbeddingClassifier()
    with pytest.raises(InvalidInputError, match="one class only"):
        clf.fit(texts[:5], ["same"] * 5)
    with pytest.raises(InvalidInputError, match="got 5 texts but 4 labels"):
        clf.fit(texts[:5], labels[:4])
    with pytest.raises(InvalidInputError, match="no texts"):
        clf.fit([], [])
    with pytest.raises(InvalidInputError, match="not one string"):
        clf.fit("one text", ["a"])
    with pytest.raises(InvalidInputError, match="text 1 is int"):
        clf.fit(["a", 3], ["x", "y"])
    with pytest.raises(InvalidInputError, match="unknown head 'svm'"):
        EmbeddingClassifier(head="svm").fit(texts, labels)
    with pytest.raises(InvalidInputError, match="n_neighbors=50"):
        EmbeddingClassifier(head="knn", n_neighbors=50).fit(texts[:20], ["a", "b"] * 10)
    with pytest.raises(InvalidInputError, match="'c' has 1"):
        EmbeddingClassifier(head="logistic-cv").fit(texts[:5], ["a", "a", "b", "b", "c"])
    for unfitted in (clf.predict, clf.predict_proba):
        with pytest.raises(InvalidInputError, match="not fitted"):
            unfitted(texts[:2])
    with pytest.raises(NotFittedError):  # what scikit-learn's tools catch
        clf.predict(texts[:2])
    with pytest.raises(InvalidInputError, match="not fitted"):
        clf.save(tmp_path / "x")


def test_load_refuses_what_is_not_a_saved_classifier(tmp_path, banking, fitted):
    with pytest.raises(InvalidInputError, match="not a saved classifier"):
        EmbeddingClassifier.load(tmp_path)
    folder = fitted["logistic"].save(tmp_path / "clf")
    config = json.loads((folder / "classifier.json").read_text())
    config["classes"] = config["classes"][:3]  # weights for 8 classes, 3 names
    (folder / "classifier.json").write_text(json.dumps(config))
    with pytest.raises(InvalidInputError, match="inconsistent classifier files"):
        EmbeddingClassifier.load(folder)
    (folder / "classifier.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="damaged classifier files"):
        EmbeddingClassifier.load(folder)
    (folder / "classifier.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InvalidInputError, match="not an embedstack classifier"):
        EmbeddingClassifier.load(folder)
