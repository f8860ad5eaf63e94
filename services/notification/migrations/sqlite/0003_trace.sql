-- The W3C trace context of the request that asked for the message, so the
-- delivery events the worker writes later belong to the same trace.
ALTER TABLE messages ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';
