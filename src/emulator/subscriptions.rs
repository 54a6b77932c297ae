//! The topics and subscriptions file (in progress).
