//! sub-conf: rendering config templates (§5).
