"""The per-stage table: each stage spans two points of a turn, over the turns that reached both."""

from __future__ import annotations

from bench.stages import STAGES, Stage, bot_total_ms, points, table


def test_points_take_first_and_last_marks_and_the_model_record() -> None:
    marks = {"persisted": [1.0], "edit": [1.2, 1.5]}
    model = {"at": 1.05, "first_token_at": 1.06, "done_at": None}
    found = points(marks, model, sent=0.99, visible=1.3, done=1.6)
    assert found["first:edit"] == 1.2
    assert found["last:edit"] == 1.5
    assert found["model:first"] == 1.06
    assert "model:done" not in found
    assert found["sent"] == 0.99
    assert found["shown"] == 1.5, "the full text showed with the last edit"
    whole = points({"post": [1.1]}, model, sent=0.99, visible=1.1, done=1.1)
    assert whole["shown"] == 1.1, "a reply posted whole shows its full text with that post"


def test_table_rows_are_in_path_order_and_skip_turns_missing_a_point() -> None:
    stages = [Stage("a", "sent", "persisted", "x"), Stage("b", "persisted", "claimed", "y", "after")]
    turns = [{"sent": 0.0, "persisted": 0.004, "claimed": 0.010}, {"sent": 1.0, "persisted": 1.002}]
    rows = table(turns, stages)
    assert [row["stage"] for row in rows] == ["a", "b"]
    assert rows[0]["n"] == 2
    assert rows[0]["mean_ms"] == 3.0
    assert rows[1]["n"] == 1
    assert rows[1]["p50_ms"] == 6.0
    assert bot_total_ms(rows) == 3.0  # "after" stages are not on the way to the reply


def test_every_stage_starts_where_an_earlier_one_ended() -> None:
    # The table reads as one path from the event to the reply seen: no stage starts from a point nothing reached.
    reached = {"sent", "model:at", "model:first", "model:done"}
    for stage in STAGES:
        assert stage.start in reached, stage
        reached.add(stage.end)
    assert "done" in reached
