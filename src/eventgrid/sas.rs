//! SAS tokens (in progress).
