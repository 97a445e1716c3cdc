-- An agent's events in order: an agent's event stream catches up with
-- them, and the agent list reads each agent's last state change.
CREATE INDEX queue_events_agent ON queue_events (agent, seq);
