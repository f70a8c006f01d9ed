//! Typed service settings (filled in next).
