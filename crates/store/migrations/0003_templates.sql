-- Agent configurations a dialect keeps by id for later starts (ZEGO's RegisterAgent). The body is
-- the dialect's own JSON; the store does not read it.
CREATE TABLE templates (
    app_id      TEXT    NOT NULL,
    dialect     TEXT    NOT NULL,
    template_id TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, dialect, template_id)
);
