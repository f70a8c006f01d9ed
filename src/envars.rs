//! Typed environment variables (§4.1).
