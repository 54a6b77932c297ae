//! Event filters (in progress).
