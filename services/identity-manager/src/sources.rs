//! Authoritative sources (VER-1). Being written.
