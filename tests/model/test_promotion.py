import json

from model.promotion import current_model, decide_promotion, record_decision


def test_first_model_is_promoted_and_only_better_ones_after(tmp_path):
    first = decide_promotion(candidate="a.pt", candidate_score=0.30, current=None, current_score=None, metric="wkdr")
    assert first.promoted
    record_decision(tmp_path, first)
    cur = current_model(tmp_path)
    worse = decide_promotion(candidate="b.pt", candidate_score=0.31, current=cur["checkpoint"],
                             current_score=cur["score"], metric="wkdr")
    record_decision(tmp_path, worse)
    assert not worse.promoted and current_model(tmp_path)["checkpoint"] == "a.pt"
    equal = decide_promotion(candidate="c.pt", candidate_score=0.30, current="a.pt", current_score=0.30, metric="wkdr")
    assert not equal.promoted  # ties keep the current model
    better = decide_promotion(candidate="d.pt", candidate_score=0.25, current="a.pt", current_score=0.30, metric="wkdr")
    record_decision(tmp_path, better)
    assert better.promoted and current_model(tmp_path)["checkpoint"] == "d.pt"
    log = [json.loads(line) for line in (tmp_path / "promotions.jsonl").read_text().splitlines()]
    assert [d["promoted"] for d in log] == [True, False, True]
    assert log[1]["candidate_score"] == 0.31 and log[1]["current_score"] == 0.30


def test_higher_is_better_metrics():
    d = decide_promotion(candidate="x", candidate_score=0.9, current="y", current_score=0.8, metric="delta1",
                         lower_is_better=False)
    assert d.promoted
