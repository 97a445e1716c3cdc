-- QA scorecards of calls. A scorecard is never changed: a reviewer who
-- changes their mind saves another one, so the history stays. Each row of
-- scorecard_scores keeps the label, weight and scale in force when it was
-- saved, so a later change of the criteria leaves old totals as they were.
-- `agent` is the call's agent from its CDR, copied so that an agent's own
-- scorecards and the search by score need no join with call_records.
CREATE TABLE scorecards (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_id TEXT NOT NULL,
    agent TEXT,
    reviewer_id BIGINT NOT NULL,
    reviewer TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    comments TEXT NOT NULL,
    total_percent DOUBLE PRECISION NOT NULL
);

CREATE INDEX scorecards_call ON scorecards (call_id, id);
CREATE INDEX scorecards_total ON scorecards (total_percent);

CREATE TABLE scorecard_scores (
    scorecard_id BIGINT NOT NULL REFERENCES scorecards (id),
    position BIGINT NOT NULL,
    criterion TEXT NOT NULL,
    label TEXT NOT NULL,
    weight BIGINT NOT NULL,
    score BIGINT NOT NULL,
    max_score BIGINT NOT NULL,
    comment TEXT NOT NULL,
    PRIMARY KEY (scorecard_id, position)
);
