-- What happened in a turn beyond its latencies (speech and playback lengths, what cut it off), a
-- JSON object; NULL for turns recorded before it was kept.
ALTER TABLE turns ADD COLUMN detail TEXT;
